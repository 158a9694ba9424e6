"""Running git: the one place the mirror starts a ``git`` process.

Every call gets a fixed environment: no prompts, no pager, no hooks run by ``git`` itself,
no optional locks (a status on a busy repo must not block the user's own git), and git's
own refusals of ``.git`` look-alikes (HFS and NTFS spellings) on every platform.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from ocm.mirror.errors import LockHeld, MirrorError, NoSpace

# Never touch fsmonitor or run hooks on behalf of a transfer; keep output parseable.
_FIXED_CONFIG = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.quotepath=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "gc.auto=0",
    # The loose objects a snapshot writes are read once, by pack-objects, which compresses
    # them into the pack anyway: zlib at write time was 15 % of a 1,000-file push. They
    # stay uncompressed on disk until git gc packs them.
    "-c",
    "core.looseCompression=0",
    "-c",
    "core.protectHFS=true",
    "-c",
    "core.protectNTFS=true",
)


class GitError(MirrorError):
    """Raised when a git command fails; the message names the command and git's last line."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") or key in _KEEP_ENV
    }
    # GIT_NO_LAZY_FETCH: in a partial clone, an object missing here is not fetched from its
    # promisor remote behind the user's back (a network call per object, or a hang); the
    # command fails instead and says which object (pack.PackStream turns that into advice).
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_NO_LAZY_FETCH="1", LC_ALL="C")
    if extra:
        env.update(extra)
    return env


# Identity and config isolation are the user's; everything else (GIT_DIR, GIT_INDEX_FILE,
# GIT_WORK_TREE from a hook that called us) would point git at the wrong repository.
_KEEP_ENV = frozenset(
    {
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
    }
)


_LOST_OBJECT_FOLDER = b"unable to create temporary file"
# git's words when another git holds a lock it needs (a ref's, HEAD's, the config's); one a
# git killed in its work left behind reads the same, and stays until someone deletes it.
_LOCK_HELD = re.compile(rb"Unable to create '(.+?\.lock)': File exists")


def run(
    root: Path,
    *args: str,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git <args>`` in ``root``; bytes in, bytes out. Raise GitError on failure, and
    when ``timeout`` seconds pass first (git is killed then)."""
    argv = ["git", *_FIXED_CONFIG, *args]
    try:
        done = subprocess.run(
            argv, cwd=root, input=input, capture_output=True, env=git_env(env), timeout=timeout
        )
        if done.returncode != 0 and _LOST_OBJECT_FOLDER in done.stderr:
            # git writes a loose object in objects/xx/, makes that folder when it is missing
            # and tries once more; a concurrent `git gc` (prune-packed) can remove the empty
            # folder again in between. Once more here: an object's name is its content, so
            # writing it twice is harmless (a full disk fails the same way again).
            done = subprocess.run(
                argv, cwd=root, input=input, capture_output=True, env=git_env(env), timeout=timeout
            )
    except OSError as exc:
        raise _not_started(exc, root) from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {timeout:g} s in {root}") from None
    if done.returncode == -signal.SIGINT:
        # Ctrl-C reached git too (its process group): no fallback or second try may run
        # after it, on a thread the interrupted command then waits for.
        raise KeyboardInterrupt
    if check and done.returncode != 0:
        if out_of_space(done.returncode, done.stderr):
            raise NoSpace(
                f"the disk of {root} is full (git {args[0]}: {last_line(done.stderr)})",
                "free some space and try again",
            )
        held = _LOCK_HELD.search(done.stderr)
        if held:
            lock = os.fsdecode(held.group(1))
            inside = os.path.relpath(lock, root)
            raise LockHeld(root, lock if inside.startswith("..") else inside)
        raise GitError(f"git {args[0]} failed in {root}: {last_line(done.stderr)}")
    return done


def own_int(root: Path, key: str) -> int | None:
    """The integer ``key`` as the repository's own config files set it, without the fixed
    ``-c`` options of :func:`run` (None: not set, or not a number)."""
    argv = ["git", "config", "--type=int", "--get", key]
    try:
        done = subprocess.run(argv, cwd=root, capture_output=True, env=git_env())
        return int(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError):
        return None


def popen(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``git <args>`` for streaming (packs in and out); the caller waits for it."""
    argv = ["git", *_FIXED_CONFIG, *args]
    try:
        return subprocess.Popen(
            argv, cwd=root, stdin=stdin, stdout=stdout, stderr=stderr, env=git_env(env)
        )
    except OSError as exc:
        raise _not_started(exc, root) from None


def _not_started(exc: OSError, root: Path) -> GitError:
    """Why git did not start. A missing folder to run it in raises the very error a missing
    git does (FileNotFoundError), naming the folder instead of ``git``: blaming git then
    would send someone to reinstall it while their folder is gone."""
    if exc.filename is not None and os.fsdecode(exc.filename) == os.fsdecode(root):
        return GitError(f"cannot run git in {root}: {exc.strerror}")
    return GitError(f"cannot run git ({exc.strerror})", "install git")


def out(
    root: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The stripped stdout of a git command that must succeed."""
    return os.fsdecode(run(root, *args, input=input, env=env).stdout).strip()


def ok(root: Path, *args: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a git command succeeds (for yes/no questions like ``merge-base --is-ancestor``)."""
    return run(root, *args, env=env, check=False).returncode == 0


def maybe(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str | None:
    """The stripped stdout of a git command, or None when it fails or prints nothing."""
    done = run(root, *args, env=env, check=False)
    text = os.fsdecode(done.stdout).strip()
    return text if done.returncode == 0 and text else None


class GitObject(NamedTuple):
    oid: str
    kind: str  # "commit", "tree", "blob" or "tag"
    content: bytes


def read_objects(
    root: Path, names: Sequence[str], env: Mapping[str, str] | None = None
) -> list[GitObject | None]:
    """The object each of ``names`` names (any revision syntax), None where there is none:
    one ``git cat-file --batch`` for them all."""
    done = run(
        root, "cat-file", "--batch", input="".join(f"{n}\n" for n in names).encode(), env=env
    )
    data, pos = done.stdout, 0
    found: list[GitObject | None] = []
    for _ in names:
        header_end = data.index(b"\n", pos)
        fields = data[pos:header_end].split()
        if len(fields) != 3:  # "<name> missing" (or ambiguous)
            found.append(None)
            pos = header_end + 1
            continue
        size = int(fields[2])
        content = data[header_end + 1 : header_end + 1 + size]
        found.append(GitObject(fields[0].decode(), fields[1].decode(), content))
        pos = header_end + 1 + size + 1
    return found


def commit_headers(content: bytes) -> dict[str, list[str]]:
    """A commit's header lines by key ("tree", "parent", "committer", ...), in order."""
    headers: dict[str, list[str]] = {}
    for line in content.split(b"\n\n", 1)[0].decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        headers.setdefault(key, []).append(value)
    return headers


_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def is_oid(text: object) -> bool:
    """Whether ``text`` is a full object id (sha1 or sha256), nothing else."""
    return isinstance(text, str) and _OID.fullmatch(text) is not None


def oid_format(oid: str) -> str:
    """The hash function (``git init --object-format``) an object id of this length is of."""
    return "sha256" if len(oid) == 64 else "sha1"


def object_format(root: Path) -> str:
    """The hash function the repository at ``root`` names its objects by."""
    return out(root, "rev-parse", "--show-object-format")


# How git reports a parallel checkout's worker killed by a file size limit.
_WORKER_OUT_OF_ROOM = f"died of signal {int(signal.SIGXFSZ)}"
# git's own words for a write the disk had no room for: an index's ("sha1 file
# '.git/index.lock' write error. Out of diskspace") and a ref's lock file's ("couldn't write
# '.git/refs/heads/main.lock'": the lock file was made, so only room can have been missing).
_GIT_OUT_OF_ROOM = ("out of diskspace", "couldn't write '")


def out_of_space(returncode: int, stderr: bytes) -> bool:
    """Whether a git command failed for want of disk (or hit a file size limit: git then
    dies of SIGXFSZ, since Python's children get the default disposition back, and so do
    the workers of a parallel checkout, which git reports as "died of signal N")."""
    if returncode == -signal.SIGXFSZ:
        return True
    text = os.fsdecode(stderr).lower()
    signs = ("no space left", "file too large", "quota exceeded", _WORKER_OUT_OF_ROOM)
    return any(sign in text for sign in signs + _GIT_OUT_OF_ROOM)


def split_z(data: bytes) -> list[str]:
    """NUL-separated git output as str paths (undecodable bytes kept via surrogateescape)."""
    # Decoded once, then split: per-item fsdecode was 0.3 s of a 20,000-file transfer.
    text = data.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    return [item for item in text.split("\0") if item]


ABSENT = "000000"  # the mode a raw diff gives a path one side does not have


class Change(NamedTuple):
    """One path that differs, as git's raw diff format names it."""

    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str
    path: str
    status: str  # "M", "A", "D", "T"; "U": unmerged in the index


def differing_paths(
    root: Path, old: str, new: str, env: Mapping[str, str] | None = None, check: bool = True
) -> list[str] | None:
    """The paths that differ between trees ``old`` and ``new`` (None: git cannot compare
    the two, when not ``check``; with it, GitError)."""
    done = run(
        root, "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new, env=env,
        check=check,
    )  # fmt: skip
    return split_z(done.stdout) if done.returncode == 0 else None


def raw_diff(root: Path, env: Mapping[str, str], command: str, *args: str) -> list[Change] | None:
    """The changes ``git <command> <args>`` prints as a raw diff (None: git failed)."""
    done = run(root, command, "-z", "--no-renames", *args, env=env, check=False)
    if done.returncode != 0:
        return None
    fields = done.stdout.split(b"\0")
    paths = split_z(b"\0".join(fields[1::2]))
    headers = [header[1:].decode().split() for header in fields[0::2] if header[:1] == b":"]
    return [
        Change(h[0], h[1], h[2], h[3], path, h[4]) for h, path in zip(headers, paths, strict=True)
    ]


def first_error(stderr: bytes) -> str:
    """git's first ``error:`` line, which names the file or object (the ``fatal:`` after it
    only says that the command gave up); else its last line."""
    for line in os.fsdecode(stderr).splitlines():
        if line.startswith("error: "):
            return line.removeprefix("error: ").strip()
    return last_line(stderr)


def last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in os.fsdecode(stderr).splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def join_z(paths: Sequence[str]) -> bytes:
    return b"".join(os.fsencode(path) + b"\0" for path in paths)
