"""Merging incoming history into the receiver's repository, never replacing it.

The staged ``.git`` that arrived is never used as a repository: its config and hooks are
foreign. Its HEAD is parsed by hand, and its object directory is only ever lent to the
receiver's own git as an alternate (``GIT_ALTERNATE_OBJECT_DIRECTORIES``) while the objects
the receiver lacks are copied into one new pack. The receiver's refs, stash, reflog and
config are only ever added to.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.errors import BadArchive, MirrorError
from ocm.mirror.select import Selection
from ocm.mirror.state import temp_index, tree_of

_OID = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
GITLINK = "160000"


@dataclass(frozen=True)
class Incoming:
    branch: str | None  # None: the sender's HEAD is detached
    head: str
    index_entries: bytes  # ``git ls-files -s -z`` of the sender's index ("" if none)
    blobs: tuple[str, ...]


def _read_ref(git_dir: Path, ref: str) -> str | None:
    loose = git_dir / ref
    if loose.is_file() and not loose.is_symlink():
        value = loose.read_text(encoding="ascii", errors="replace").strip()
        return value if _OID.match(value) else None
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in packed.splitlines():
        oid, _, name = line.partition(" ")
        if name == ref and _OID.match(oid):
            return oid
    return None


def read_incoming(root: Path, git_dir: Path) -> Incoming:
    """The sender's HEAD (branch and commit) and index, from the staged ``.git``."""
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        raise BadArchive("the archive has no readable .git/HEAD") from None
    branch: str | None = None
    if head.startswith("ref: "):
        ref = head[5:].strip()
        if not ref.startswith("refs/heads/") or not gitcmd.ok(root, "check-ref-format", ref):
            raise BadArchive(f"the archive's HEAD points at an invalid ref ({ref!r})")
        branch = ref[len("refs/heads/") :]
        oid = _read_ref(git_dir, ref)
        if oid is None:
            raise BadArchive(f"the sender's branch {branch} has no commit yet; commit first")
    elif _OID.match(head):
        oid = head
    else:
        raise BadArchive("the archive's .git/HEAD is not a ref or a commit id")
    # A foreign alternates file would make our git read objects from anywhere on this host.
    for name in ("alternates", "http-alternates"):
        path = git_dir / "objects" / "info" / name
        if path.exists() or path.is_symlink():
            path.unlink()
    entries = b""
    index = git_dir / "index"
    if index.is_file():
        done = gitcmd.run(
            root, "ls-files", "-s", "-z", check=False, env={"GIT_INDEX_FILE": str(index)}
        )
        if done.returncode == 0:
            entries = done.stdout
    blobs = []
    for record in entries.split(b"\0"):
        if record:
            mode, oid_b, _rest = record.split(b" ", 2)
            if mode.decode() != GITLINK:
                blobs.append(oid_b.decode())
    return Incoming(branch, oid, entries, tuple(dict.fromkeys(blobs)))


def missing_objects(root: Path, oids: list[str]) -> list[str]:
    """Those of ``oids`` the receiver's own object store lacks."""
    if not oids:
        return []
    done = gitcmd.run(root, "cat-file", "--batch-check", input="\n".join(oids).encode() + b"\n")
    return [
        line.split()[0] for line in done.stdout.decode().splitlines() if line.endswith(" missing")
    ]


def import_objects(root: Path, git_dir: Path, incoming: Incoming) -> None:
    """Copy the commits, trees and blobs the receiver lacks into one new pack of its own.

    Cheap when nothing is new: a HEAD that already is the tip of one of the receiver's refs
    is complete history, and staged blobs are only copied when missing.
    """
    tips = missing_objects(root, list(incoming.blobs))
    tip_refs = gitcmd.out(root, "for-each-ref", "--format=%(objectname)").split()
    if incoming.head not in tip_refs:
        tips.insert(0, incoming.head)
    if not tips:
        return
    env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(git_dir / "objects")}
    done = gitcmd.run(
        root,
        "rev-list",
        "--objects",
        "--stdin",
        "--not",
        "--all",
        input="\n".join(tips).encode() + b"\n",
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise BadArchive(
            "the archive's history is incomplete (a shallow clone, or missing "
            f"objects): {gitcmd.last_line(done.stderr)}"
        )
    if done.stdout.strip():
        pack_base = root / ".git" / "objects" / "pack" / "pack"
        pack_base.parent.mkdir(parents=True, exist_ok=True)
        gitcmd.run(root, "pack-objects", "-q", str(pack_base), input=done.stdout, env=env)
    if missing_objects(root, [incoming.head]):
        raise MirrorError("the incoming commits could not be stored in the receiving repo")


def is_ancestor(root: Path, old: str, new: str) -> bool:
    return gitcmd.ok(root, "merge-base", "--is-ancestor", old, new)


def commits_lacking(root: Path, tip: str, incoming: str) -> int:
    """How many commits reachable from ``tip`` the incoming history lacks (0 if none)."""
    if tip == incoming or is_ancestor(root, tip, incoming):
        return 0
    return int(gitcmd.out(root, "rev-list", "--count", tip, "--not", incoming) or 0)


def orphaned_by_move(root: Path, detached_at: str, incoming: str) -> int:
    """Commits only a detached HEAD holds, which moving HEAD would leave to the reflog."""
    return int(
        gitcmd.out(
            root,
            "rev-list",
            "--count",
            detached_at,
            "--not",
            incoming,
            "--branches",
            "--tags",
            "--remotes",
        )
        or 0
    )


def head_commit(root: Path) -> str | None:
    return gitcmd.maybe(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")


def branch_tip(root: Path, branch: str) -> str | None:
    return gitcmd.maybe(root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}")


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def backup_ref(root: Path, name: str, oid: str, when: str) -> str:
    """Keep ``oid`` under ``refs/ocm/backup/<name>/<when>`` and return the ref."""
    ref = f"refs/ocm/backup/{name}/{when}"
    n = 1
    while gitcmd.maybe(root, "rev-parse", "--verify", "-q", ref):
        n += 1
        ref = f"refs/ocm/backup/{name}/{when}-{n}"
    gitcmd.run(root, "update-ref", "-m", "ocm: backup before mirror", ref, oid)
    return ref


def _commit(root: Path, tree: str, message: str, parents: list[str]) -> str:
    args = ["commit-tree", tree, "-m", message]
    for parent in parents:
        args += ["-p", parent]
    return gitcmd.out(root, *args, env=_identity())


def _identity() -> dict[str, str]:
    # A stash needs an author even on a Manager where nobody configured git.
    env: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        env.setdefault(f"GIT_{role}_NAME", os.environ.get(f"GIT_{role}_NAME", "ocm"))
        env.setdefault(f"GIT_{role}_EMAIL", os.environ.get(f"GIT_{role}_EMAIL", "ocm@localhost"))
    return env


def save_worktree(
    root: Path, selection: Selection, head: str | None, branch: str | None, reason: str
) -> str:
    """Save uncommitted changes, untracked files included, without touching the work tree.

    Builds the same commits ``git stash push --include-untracked`` would (W with parents
    HEAD, I and U) and stores them with ``git stash store``, so ``git stash apply`` brings
    them back. ``git stash -u`` itself is not used: it would delete the untracked files,
    an unignored ``node_modules`` included. On an unborn branch there is no HEAD to hang a
    stash on, so the snapshot goes to a backup ref instead. Returns how to get it back.
    """
    on = f"{branch or '(no branch)'}: {head[:12] if head else 'unborn'}"
    full = tree_of(
        root, selection.files, base_index=True, write_blobs=True, remove=selection.deleted
    )
    if full is None:
        raise MirrorError("could not save the uncommitted changes (is a merge in progress?)")
    if head is None:
        ref = backup_ref(root, "worktree", _commit(root, full, f"ocm: {reason}", []), stamp())
        return ref
    tracked = tree_of(
        root, selection.tracked, base_index=True, write_blobs=True, remove=selection.deleted
    )
    with temp_index(root, copy_real=True) as env:
        index_tree = gitcmd.maybe_env(root, env, "write-tree")
    index_commit = _commit(
        root,
        index_tree or gitcmd.out(root, "rev-parse", f"{head}^{{tree}}"),
        f"index on {on}",
        [head],
    )
    parents = [head, index_commit]
    if selection.untracked:
        untracked = tree_of(root, selection.untracked, base_index=False, write_blobs=True)
        if untracked:
            parents.append(_commit(root, untracked, f"untracked files on {on}", []))
    work = _commit(root, tracked or full, f"On {on} {reason}", parents)
    gitcmd.run(root, "stash", "store", "-m", f"ocm: {reason}", work)
    return "stash@{0}"


def move_head(root: Path, incoming: Incoming, message: str) -> None:
    """Point the incoming branch at the incoming commit and HEAD at it (or detach HEAD)."""
    if incoming.branch is None:
        gitcmd.run(root, "update-ref", "--no-deref", "-m", message, "HEAD", incoming.head)
        return
    gitcmd.run(root, "update-ref", "-m", message, f"refs/heads/{incoming.branch}", incoming.head)
    gitcmd.run(root, "symbolic-ref", "-m", message, "HEAD", f"refs/heads/{incoming.branch}")


def _entries(data: bytes) -> dict[bytes, bytes]:
    """``ls-files -s -z`` records keyed by (stage, path), valued by "mode oid"."""
    found = {}
    for record in data.split(b"\0"):
        if record:
            info, _, path = record.partition(b"\t")
            mode, oid, stage = info.split(b" ")
            found[stage + b"\t" + path] = mode + b" " + oid
    return found


def rebuild_index(root: Path, incoming: Incoming) -> None:
    """Give the receiver the sender's index (staged changes stay staged), then refresh it.

    Only entries that differ are rewritten, so unchanged files keep their stat data and
    the refresh re-reads just what changed. Built in a private file and renamed over
    ``.git/index``, so a crash leaves the old one.
    """
    with temp_index(root, copy_real=True) as env:
        ok = False
        if incoming.index_entries:
            old = _entries(gitcmd.run(root, "ls-files", "-s", "-z", env=env).stdout)
            new = _entries(incoming.index_entries)
            zero = b"0" * len(incoming.head)
            lines = [b"0 " + zero + b" " + key for key in old if key not in new]
            lines += [value + b" " + key for key, value in new.items() if old.get(key) != value]
            done = gitcmd.run(
                root,
                "update-index",
                "-z",
                "--index-info",
                input=b"".join(line + b"\0" for line in lines),
                env=env,
                check=False,
            )
            ok = done.returncode == 0
        if not ok:
            gitcmd.run(root, "read-tree", incoming.head, env=env)
        # Exit code 1 only means "some files differ from the index": expected.
        gitcmd.run(root, "update-index", "-q", "--refresh", env=env, check=False)
        os.replace(env["GIT_INDEX_FILE"], root / ".git" / "index")
