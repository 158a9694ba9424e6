"""Real repos for mirror tests, and a way to compare two work trees exactly."""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
from pathlib import Path
from typing import NamedTuple

import requests

from ocm.mirror import pack, receive, send, wire
from ocm.mirror.pack import Limits
from tests.support.git import git, write_files
from tests.support.processes import RunningManager


def tree_listing(root: Path, *, skip: tuple[str, ...] = (".git",)) -> dict[str, tuple]:
    """Every file, symlink and its content/exec bit under ``root`` (minus ``skip`` dirs)."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in skip]
        prefix = "" if rel == "." else rel + "/"
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                found[prefix + name] = ("link", os.readlink(os.path.join(dirpath, name)))
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[prefix + name] = ("link", os.readlink(path))
            else:
                found[prefix + name] = (
                    "file",
                    bool(st.st_mode & stat.S_IXUSR),
                    Path(path).read_bytes(),
                )
    return found


def age(root: Path, names: list[str]) -> None:
    """Date files an hour back: git re-reads a file changed in the second its index was
    written ("racily clean"), and these are to be taken on trust."""
    hour_ago = time.time_ns() - 3600 * 10**9
    for name in names:
        os.utime(root / name, ns=(hour_ago, hour_ago))


def rewrite_unseen(note: Path) -> None:
    """Change ``note`` keeping its size and times: with ``core.trustctime`` off, git's stat
    data (and ``git status``) then counts it as unchanged."""
    seen = note.stat()
    note.write_text("note X\n")  # same size
    os.utime(note, ns=(seen.st_atime_ns, seen.st_mtime_ns))


def rich_repo(path: Path, origin: str = "https://example.invalid/org/proj.git") -> Path:
    """A repo with the awkward cases: exec bits, links, binary, unicode, spaces, empties."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    files = {
        "README.md": "# proj\n",
        "src/app.py": "print('hi')\n",
        "bin/run.sh": "#!/bin/sh\necho run\n",
        "docs/ünïcödé name.txt": "unicode and a space\n",
        "empty.txt": "",
        ".gitignore": "*.log\n!keep.log\nbuild/\n",
        "nested/.gitignore": "secret.txt\n!not-secret.txt\n",
        "nested/not-secret.txt": "fine\n",
        "vendor/node_modules/tracked.js": "// tracked under an excluded name\n",
    }
    write_files(path, files)
    (path / "bin/run.sh").chmod(0o755)
    (path / "data.bin").write_bytes(bytes(range(256)) * 40 + b"\0\xff")
    os.symlink("src/app.py", path / "link-to-app")
    os.symlink("../src", path / "docs/src-dir")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "remote", "add", "origin", origin)
    return path


def pack_bytes(source: Path, receiver_tips: list[str] | None = None) -> tuple[bytes, send.Outgoing]:
    """The pack a push from ``source`` sends to a receiver with ``receiver_tips``."""
    outgoing = send.prepare(source)
    with outgoing.open_pack(receiver_tips or []) as stream:
        return b"".join(stream), outgoing


def transfer(
    source: Path,
    target: Path,
    tmp: Path,
    *,
    force: bool = False,
    known: tuple[str | None, ...] = (),
    limits: Limits | None = None,
) -> receive.Received:
    """Pack ``source`` for ``target`` and receive it there in-process (what push/pull do)."""
    data, outgoing = pack_bytes(source, pack.tips(target))
    with receive.repo_lock(target):
        return receive.receive(
            target,
            io.BytesIO(data),
            snapshot_commit=outgoing.snapshot.commit,
            branch=outgoing.snapshot.branch,
            staging_dir=tmp / "staging",
            limits=limits or Limits(),
            force=force,
            known=known,
        )


def repo_listing(root: Path) -> dict[str, tuple]:
    """Work tree and ``.git`` (refs, index, logs, config, stash), minus object storage.

    Looking at a repo writes a few unreachable tree objects (the snapshot); that is the
    only change a refused or failed transfer may leave.
    """
    return {
        name: value
        for name, value in tree_listing(root, skip=()).items()
        if not name.startswith(".git/objects/") and name != ".git/ocm.lock"
    }


def post_up(
    manager: RunningManager, repo_id: int, body: object, snapshot: str, **params: str
) -> requests.Response:
    """A raw ``POST /up`` as a client of this wire format sends it."""
    return requests.post(
        f"{manager.url}/api/internal/repo-mirror/{repo_id}/up",
        data=body,
        params={wire.VERSION_PARAM: str(wire.VERSION), "snapshot": snapshot, **params},
        timeout=60,
        headers={"Authorization": f"Bearer {manager.token}"},
    )


# The Manager's git, stopped for good (SIGSTOP) once it runs ``command``, after touching
# ``flag``: the transfer is then in the middle of it, and stays there until the test acts.
# With ``arm``, only once that file exists (the transfers that set the scene go through).
_HELD_GIT = """#!/bin/sh
if [ -z "{arm}" ] || [ -e "{arm}" ]; then
  for arg in "$@"; do
    if [ "$arg" = {command} ]; then touch "{flag}"; kill -STOP $$; fi
  done
fi
exec "{git}" "$@"
"""


def held_git(folder: Path, command: str, arm: Path | None = None) -> tuple[dict[str, str], Path]:
    """(an environment whose ``git`` stops itself in ``command``, the file it touches then)."""
    folder.mkdir()
    flag = folder / f"{command}-started"
    stand_in = folder / "git"
    stand_in.write_text(
        _HELD_GIT.format(arm=arm or "", command=command, flag=flag, git=shutil.which("git"))
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    return os.environ | {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, flag


# A git that pauses once it runs ``command`` while ``go`` is absent: it touches ``reached``
# and waits for ``go``. The transfer is then at that step, and goes on when the test says.
_PAUSED_GIT = """#!/bin/sh
if [ ! -e "{go}" ]; then
  for arg in "$@"; do
    if [ "$arg" = {command} ]; then
      touch "{reached}"
      while [ ! -e "{go}" ]; do sleep 0.05; done
    fi
  done
fi
exec "{git}" "$@"
"""


class Paused(NamedTuple):
    env: dict[str, str]  # os.environ with the pausing git first on PATH
    reached: Path  # touched when git has reached the command
    go: Path  # made by the test to let it go on; absent: the next such command pauses


def paused_git(folder: Path, command: str) -> Paused:
    """A ``git`` that pauses in ``command``, armed (its ``go`` absent)."""
    folder.mkdir()
    reached, go = folder / f"{command}-reached", folder / f"{command}-go"
    stand_in = folder / "git"
    stand_in.write_text(
        _PAUSED_GIT.format(command=command, reached=reached, go=go, git=shutil.which("git"))
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    return Paused(os.environ | {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, reached, go)


# A git whose ``command`` stays at work holding whatever lock it took: it gets a clean filter
# that touches ``flag`` and never ends, which git runs on each file it hashes that the
# repo's attributes give ``filter=stuck`` (see :func:`stuck_git`). For other commands the
# filter has no driver, and git ignores the attribute.
_STUCK_GIT = """#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = {command} ]; then exec "{git}" -c filter.stuck.clean="{filter}" "$@"; fi
done
exec "{git}" "$@"
"""
_STUCK_FILTER = """#!/bin/sh
touch "{flag}"
exec sleep 3600
"""
STUCK_ATTRIBUTES = "* filter=stuck\n"


def stuck_git(folder: Path, command: str) -> tuple[dict[str, str], Path]:
    """(an environment whose ``git`` stays in ``command`` once it hashes a file of a repo
    with :data:`STUCK_ATTRIBUTES` in its ``.git/info/attributes``, the file touched then).
    Unlike :func:`held_git`, which stops before git starts, git itself is at work."""
    folder.mkdir()
    flag = folder / f"{command.lstrip('-')}-stuck"
    for name, script in (
        (
            "git",
            _STUCK_GIT.format(command=command, git=shutil.which("git"), filter=folder / "filter"),
        ),
        ("filter", _STUCK_FILTER.format(flag=flag)),
    ):
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    return os.environ | {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, flag
