"""Each repo's root commits, which match a laptop checkout that has no ``origin`` (SPEC §3).

A root commit is a commit without parents: ``git rev-list --max-parents=0 HEAD``. It is how
OpenCode itself identifies a project with no remote, and it survives every push and pull,
since both sides share the history. Walking the whole history costs a git process (and for a
big repo a while), and every bare ``ocm``, push and pull lists the repos, so the answer is
cached per directory until HEAD moves, and then only the commits since are walked. Whether
HEAD moved is seen from a few ``stat`` calls, without starting git. Nothing is stored in
the registry: the repo on disk is the truth.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import NamedTuple

from ocm.mirror import gitcmd
from ocm.mirror.errors import MirrorError

HeadKey = tuple[object, ...]
log = logging.getLogger("manager.roots")


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def head_key(directory: Path) -> HeadKey | None:
    """Something that changes whenever HEAD's commit may have changed; None: cannot tell.

    git rewrites a ref by renaming a new file over it, so the ref file's inode and mtime
    change with every move; a ref only in ``packed-refs`` moves when that file is rewritten.
    """
    git_dir = directory / ".git"
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None  # a .git file (worktree, submodule) or no repo: ask git every time
    if not head.startswith("ref: "):
        return (head,)  # detached: HEAD holds the commit id itself
    ref = head[len("ref: ") :]
    if (git_dir / "reftable").exists() or ".." in ref:
        return None
    return (head, _stat_key(git_dir / ref), _stat_key(git_dir / "packed-refs"))


# A walk of a long history takes a while; one that takes longer than this is not waited for.
WALK_SECONDS = 120.0


class Known(NamedTuple):
    """An answer: HEAD's commit ("" on an unborn branch) and its root commits, sorted."""

    head: str
    roots: list[str]


def compute_root_commits(directory: Path, known: Known | None = None) -> Known | None:
    """The root commits of ``directory``'s HEAD ([] when it has no commit yet); None when
    git cannot say (objects missing, a timeout): not an answer to keep.

    ``known``: an earlier answer. When HEAD still is its commit (a push rewrote the ref with
    the same value), it stands; when HEAD descends from it (an agent committed, a push
    brought commits), only the commits since are walked: their roots join the known ones.
    A whole history of 500,000 commits took 2.5 s to walk, each time HEAD moved."""
    try:
        head = gitcmd.run(directory, "rev-parse", "-q", "--verify", "HEAD", check=False)
        oid = os.fsdecode(head.stdout).strip()
        if head.returncode == 1 and not oid:
            return Known("", [])  # HEAD names a branch with no commit yet
        if head.returncode != 0:
            reason = gitcmd.last_line(head.stderr)
        elif known is not None and oid == known.head:
            return known
        else:
            # The known answer's commit, when HEAD descends from it.
            base = known if known is not None and known.head else None
            if base and not gitcmd.ok(directory, "merge-base", "--is-ancestor", base.head, oid):
                base = None
            walk = ["rev-list", "--max-parents=0", oid, *([f"^{base.head}"] if base else [])]
            done = gitcmd.run(directory, *walk, check=False, timeout=WALK_SECONDS)
            if done.returncode == 0:
                found = os.fsdecode(done.stdout).split()
                return Known(oid, sorted({*found, *(base.roots if base else [])}))
            reason = gitcmd.last_line(done.stderr)
    except MirrorError as exc:  # no git, or the walk ran out of time
        reason = exc.message
    log.warning(
        "cannot list the root commits of %s (%s); a checkout without origin will not find "
        "this repo until git can read its history",
        directory,
        reason,
    )
    return None


class RootCommits:
    """A thread-safe cache of :func:`compute_root_commits`, per directory and HEAD."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[Path, tuple[HeadKey, Known]] = {}

    def of(self, directory: Path) -> list[str]:
        key = head_key(directory)
        with self._lock:
            cached = self._known.get(directory)
        if key is not None and cached is not None and cached[0] == key:
            return list(cached[1].roots)
        found = compute_root_commits(directory, cached[1] if cached else None)
        if found is None:  # asked again next time: the repo may be mended by then
            return []
        if key is not None and head_key(directory) == key:  # HEAD did not move meanwhile
            with self._lock:
                self._known[directory] = (key, found)
        return list(found.roots)

    def forget(self, keep: set[Path]) -> None:
        """Drop the entries of directories no longer registered."""
        with self._lock:
            for directory in [d for d in self._known if d not in keep]:
                del self._known[directory]
