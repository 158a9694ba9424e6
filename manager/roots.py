"""Each repo's root commits, which match a laptop checkout that has no ``origin`` (SPEC §3).

A root commit is a commit without parents: ``git rev-list --max-parents=0 HEAD``. It is how
OpenCode itself identifies a project with no remote, and it survives every push and pull,
since both sides share the history. Walking the whole history costs a git process (and for a
big repo a while), and every bare ``ocm``, push and pull lists the repos, so the answer is
cached per directory until HEAD moves, and then only the commits since are walked. Whether
HEAD moved is seen from a few ``stat`` calls, without starting git. The answer is also kept
in the repo (``.git/ocm-roots``, as a laptop keeps its checkout's), so that a restarted
Manager does not walk every history again; nothing is stored in the registry: the repo on
disk is the truth.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.errors import MirrorError
from ocm.root_commits import Known, kept_walk

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


def compute_root_commits(directory: Path, known: Known | None = None) -> Known | None:
    """The root commits of ``directory``'s HEAD ([] when it has no commit yet); None when
    git cannot say (objects missing, a timeout): not an answer to keep. ``known``: the
    answer of an earlier call, else the one kept in the repo by an earlier run, so that a
    restart walks no history (:func:`ocm.root_commits.kept_walk`)."""
    try:
        head = gitcmd.run(directory, "rev-parse", "-q", "--verify", "HEAD", check=False)
        oid = os.fsdecode(head.stdout).strip()
        if head.returncode == 1 and not oid:
            return Known("", [])  # HEAD names a branch with no commit yet
        if head.returncode == 0:
            return kept_walk(directory, oid, known)
        reason = gitcmd.last_line(head.stderr)
    except MirrorError as exc:  # no git, or the walk failed or ran out of time
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
