"""Merging incoming history into the receiver's repository, never replacing it.

The incoming commits arrive as objects only (:mod:`ocm.mirror.pack`); nothing of the
sender's repository but its objects ever reaches the receiver, so no foreign config or
hook can run. The receiver's refs, stash, reflog and config are only ever added to: the
incoming branch is created or moved, HEAD follows it, and the index becomes the sender's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.kept_index import Kept
from ocm.mirror.select import Selection
from ocm.mirror.snapshot import Snapshot, commit
from ocm.mirror.state import copy_index, index_tree, snapshot, temp_index


def is_ancestor(root: Path, old: str, new: str) -> bool:
    return gitcmd.ok(root, "merge-base", "--is-ancestor", old, new)


def commits_lacking(root: Path, tip: str, incoming: str) -> int:
    """How many commits reachable from ``tip`` the incoming history lacks (0 if none)."""
    if tip == incoming or is_ancestor(root, tip, incoming):
        return 0
    return int(gitcmd.out(root, "rev-list", "--count", tip, "--not", incoming) or 0)


def orphaned_by_move(root: Path, detached_at: str, incoming: str | None) -> int:
    """Commits only a detached HEAD holds, which moving HEAD to ``incoming`` would leave to
    the reflog (``incoming`` None: a commit this repository does not have)."""
    beside = [incoming] if incoming else []
    rev_list = ["rev-list", "--count", detached_at, "--not", *beside]
    return int(gitcmd.out(root, *rev_list, "--branches", "--tags", "--remotes") or 0)


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


def save_worktree(
    root: Path,
    selection: Selection,
    head: str | None,
    branch: str | None,
    reason: str,
    shared: str | None = None,
) -> str:
    """Save uncommitted changes, untracked files included, without touching the work tree;
    how to get them back: a stash commit's id (for ``git stash apply``) or a backup ref.

    Builds a stash entry (W, with parents its base and the index I) and stores it with
    ``git stash store``. ``git stash -u`` itself is not used: it would delete the untracked
    files, an unignored ``node_modules`` included. Untracked files are in W itself, not in a
    third commit as ``-u`` keeps them: git restores those only where no file of that name
    is, and after a pull that brought the file (one pushed untracked, then edited here) the
    advised ``git stash pop`` would fail. The base is ``shared``, the snapshot commit of the
    state the last transfer left, when HEAD is still its first parent: applied after the
    pull, the stash then merges this side's edits since that state into what the other side
    made of it, rather than clashing with it from HEAD. On an unborn branch there is no HEAD
    to hang a stash on, so the snapshot goes to a backup ref instead.
    """
    on = f"{branch or '(no branch)'}: {head[:12] if head else 'unborn'}"
    full = snapshot(root, selection)
    if head is None:
        return backup_ref(root, "worktree", commit(root, full, [], f"ocm: {reason}"), stamp())
    base = shared if shared and _first_parent(root, shared) == head else head
    staged = index_tree(root) or gitcmd.out(root, "rev-parse", f"{head}^{{tree}}")
    index = commit(root, staged, [base], f"index on {on}")
    work = commit(root, full, [base, index], f"On {on} {reason}")
    gitcmd.run(root, "stash", "store", "-m", f"ocm: {reason}", work)
    return work[:12]


def _first_parent(root: Path, oid: str) -> str | None:
    (found,) = gitcmd.read_objects(root, [oid])
    if found is None or found.kind != "commit":
        return None
    parents = gitcmd.commit_headers(found.content).get("parent", [])
    return parents[0] if parents else None


def move_head(root: Path, incoming: Snapshot, message: str, on: str | None) -> None:
    """Point the incoming branch at the incoming commit and HEAD at it (or detach HEAD).
    ``on`` is the branch HEAD is on now (a HEAD already there follows, reflog and all)."""
    if incoming.branch is None:
        gitcmd.run(root, "update-ref", "--no-deref", "-m", message, "HEAD", incoming.head)
        return
    gitcmd.run(root, "update-ref", "-m", message, f"refs/heads/{incoming.branch}", incoming.head)
    if on != incoming.branch:
        gitcmd.run(root, "symbolic-ref", "-m", message, "HEAD", f"refs/heads/{incoming.branch}")


def rebuild_index(
    root: Path,
    incoming: Snapshot,
    refresh: bool,
    written: Collection[str],
    indexed: Collection[str],
    into: Path,
) -> None:
    """Build at ``into`` the receiver's new index: the sender's (staged changes stay staged),
    refreshed. The caller renames it over ``.git/index``.

    Only the entries that differ are rewritten (:func:`_rewrite_differing`), so the others
    keep their stat data and the refresh re-reads just what changed: those entries, and
    those of the files the switch wrote (``written``) that the index already had
    (``indexed``: the old index's paths). Built from a copy of ``.git/index``, so a crash
    leaves the old one. Without ``refresh`` the entries that changed have no stat data until
    a later refresh: git re-reads them meanwhile.
    """
    if (root / ".git" / "index").exists():
        copy_index(root / ".git" / "index", into)
    env = {"GIT_INDEX_FILE": str(into)}
    rewritten = _rewrite_differing(root, env, incoming.index_tree)
    if rewritten is None:
        # A one-tree ``read-tree -m`` also keeps the stat data of what did not change.
        # ``-i``: the work tree is already the new one, which a plain ``-m`` refuses for
        # every entry that changed ("not uptodate").
        merged = gitcmd.run(
            root, "read-tree", "-i", "-m", incoming.index_tree, env=env, check=False
        )
        if merged.returncode != 0:  # e.g. the old index had conflicts: start afresh
            gitcmd.run(root, "read-tree", incoming.index_tree, env=env)
    if refresh:
        stale = None
        if rewritten is not None:
            removed = {change.path for change in rewritten if change.new_mode == gitcmd.ABSENT}
            touched = {change.path for change in rewritten}
            stale = sorted(touched.union(name for name in written if name in indexed) - removed)
        refresh_index(root, env, stale)


# Up to this many entries are refreshed by name; beyond, matching every entry against the
# names costs more than the one pass over all of them (about 40 ms on 21,000 files).
_REFRESH_BY_NAME = 100


def refresh_index(
    root: Path, env: dict[str, str] | None = None, stale: list[str] | None = None
) -> None:
    """Give the entries ``stale`` names (None: every entry) of the index (``env``'s, else
    the repo's) the stat data of their files, where the content still matches. ``git add
    --refresh`` looks at just those paths; should it fail (a path it does not match), the
    whole index is refreshed instead."""
    if stale is not None and len(stale) <= _REFRESH_BY_NAME:
        if not stale:
            return
        literal = {**(env or {}), "GIT_LITERAL_PATHSPECS": "1"}
        if gitcmd.ok(root, "add", "--refresh", "--", *stale, env=literal):
            return
    # Exit code 1 only means "some files differ from the index": expected.
    gitcmd.run(root, "update-index", "-q", "--refresh", env=env, check=False)


# More paths than this are not named to git (a command line has its limits): it compares
# every entry, and the answer is narrowed here.
_NAMED_PATHS = 1000


def changed_since(root: Path, looked: Kept, paths: Collection[str]) -> list[str]:
    """Which of ``paths`` are no longer what the look that built ``looked`` saw (edited,
    deleted, replaced by another kind): git's ``diff-files`` against that index, whose stat
    data are the look's, so only files changed since are read. Entries it holds without
    stat data (taken from the real index after a commit: :mod:`ocm.mirror.kept_index`) are
    listed too: those get theirs where the content is still the look's, and are asked
    again."""
    if not paths:
        return []
    with temp_index(root, copy_real=False) as env:
        index_file = Path(env["GIT_INDEX_FILE"])
        index_file.write_bytes(looked.data)
        os.utime(index_file, ns=(looked.mtime_ns, looked.mtime_ns))
        changed = _differing_files(root, env, paths)
        if changed:
            refresh_index(root, env, changed)
            changed = _differing_files(root, env, changed)
    return changed


def _differing_files(root: Path, env: dict[str, str], paths: Collection[str]) -> list[str]:
    """Those of ``paths`` whose file does not match its entry in the index ``env`` names."""
    named = ["--", *paths] if len(paths) <= _NAMED_PATHS else []
    listed = gitcmd.run(
        root, "diff-files", "--name-only", "-z", "--ignore-submodules=all", *named,
        env={**env, "GIT_LITERAL_PATHSPECS": "1"},
    )  # fmt: skip
    wanted = set(paths)
    return [name for name in gitcmd.split_z(listed.stdout) if name in wanted]


# An index file that holds only what a tree can say: no entry with extended flags
# (intent-to-add, skip-worktree), which git writes as version 3 (or 4, when asked to).
_PLAIN_INDEX = b"DIRC\0\0\0\x02"


def _rewrite_differing(root: Path, env: dict[str, str], tree: str) -> list[gitcmd.Change] | None:
    """Make the index ``env`` names hold ``tree`` by rewriting the entries that differ from
    it (``git diff-index --cached``, then ``update-index --index-info``): on 21,000 files,
    15 ms where ``read-tree -m`` walks every entry in 45-55 ms. Returns those changes; None,
    having changed nothing, when the index is missing, has conflicts, or holds entries a
    tree cannot describe (then ``read-tree`` judges them)."""
    try:
        with open(env["GIT_INDEX_FILE"], "rb") as index:
            if index.read(len(_PLAIN_INDEX)) != _PLAIN_INDEX:
                return None
    except FileNotFoundError:
        return None
    # -R: each change's "new" side is the tree's.
    found = gitcmd.raw_diff(root, env, "diff-index", "-R", "--cached", tree)
    if found is None or any(change.status == "U" for change in found):
        return None
    if found:
        lines = [
            f"{change.new_mode} {change.new_oid}\t{change.path}"
            if change.new_mode != gitcmd.ABSENT
            else f"0 {change.old_oid}\t{change.path}"  # mode 0: drop the entry
            for change in found
        ]
        gitcmd.run(root, "update-index", "-z", "--index-info", input=gitcmd.join_z(lines), env=env)
    return found
