"""A checkout's whole state as one commit: the *snapshot* both sides send and receive.

Built the way ``git stash create`` (with ``-u``) describes a work tree, and never touching
the user's index, stash or refs: the commit's tree is the work tree (every file that
travels, :mod:`ocm.mirror.select`), its first parent is HEAD, and its second parent is a
commit of the index (what is staged). The branch travels beside it. Blobs are written
through a throw-away index seeded from a copy of ``.git/index``, so git's stat cache spares
rehashing unchanged files. Identity and date are fixed (the date is HEAD's), so the same
state always gives the same commit and an unchanged checkout sends nothing new.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ocm.mirror import gitcmd
from ocm.mirror.errors import BadPack, IncompletePack, Unfinished
from ocm.mirror.kept_index import Kept
from ocm.mirror.select import Selection
from ocm.mirror.state import Head, staged_and_snapshot


class Snapshot(NamedTuple):
    commit: str
    head: str
    branch: str | None  # None: HEAD is detached
    tree: str  # the work tree
    index_tree: str
    # The index the sender built it in: saved once the transfer succeeded (see kept_index).
    kept: Kept | None = None


def commit(root: Path, tree: str, parents: list[str], message: str, date: str = "") -> str:
    """Write a commit by "ocm" (a Manager may have no git identity); ``date`` fixes its time."""
    env: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        env.update({f"GIT_{role}_NAME": "ocm", f"GIT_{role}_EMAIL": "ocm@localhost"})
        if date:
            env[f"GIT_{role}_DATE"] = date
    args = ["commit-tree", tree, "-m", message]
    for parent in parents:
        args += ["-p", parent]
    return gitcmd.out(root, *args, env=env)


def build(root: Path, selection: Selection, head: Head) -> Snapshot:
    """Write the snapshot commit of the checkout at ``root`` (objects only, no ref)."""
    assert head.commit is not None
    staged, tree, kept = staged_and_snapshot(root, selection)
    if staged is None:  # a snapshot is written only of a resolved index
        raise Unfinished(
            f"the index of {root} has unresolved conflicts",
            "resolve them (edit, then `git add` each file), then run the command again",
        )
    on = head.branch or "detached HEAD"
    index_commit = commit(root, staged, [head.commit], f"ocm: index on {on}", head.date)
    snap = commit(root, tree, [head.commit, index_commit], f"ocm: snapshot of {on}", head.date)
    return Snapshot(snap, head.commit, head.branch, tree, staged, kept)


def _fields(content: bytes) -> tuple[str, list[str]]:
    """(tree, parents) of a commit's content."""
    headers = gitcmd.commit_headers(content)
    return headers.get("tree", [""])[0], headers.get("parent", [])


# Names git accepts whatever its rules (no dots, no "@", no empty component): the usual
# "main" or "feature/x-1" spare a ``git check-ref-format``, which judges everything else.
_PLAIN_BRANCH = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


def valid_branch(root: Path, branch: str) -> bool:
    """Whether git takes ``branch`` as a branch name (asked in ``root``, any folder)."""
    if branch.startswith("-") or "\0" in branch:  # no option; and no NUL for an argument
        return False
    return bool(_PLAIN_BRANCH.fullmatch(branch)) or gitcmd.ok(
        root, "check-ref-format", f"refs/heads/{branch}"
    )


def read_snapshot(root: Path, env: dict[str, str], commit: str, branch: str | None) -> Snapshot:
    """The snapshot commit ``commit`` as it arrived (``env`` sees the quarantine)."""
    if not gitcmd.is_oid(commit):
        raise BadPack(f"the snapshot id {commit[:80]!r} is not an object id")
    if branch is not None and not valid_branch(root, branch):
        raise BadPack(f"the branch name {branch[:80]!r} is not a valid git branch name")
    # The commit and its two parents in one look (``^1``/``^2``: any revision syntax works).
    found = gitcmd.read_objects(root, [commit, f"{commit}^1", f"{commit}^2"], env=env)
    if found[0] is None:
        raise IncompletePack(f"the pack does not bring the commit {commit[:12]} it names")
    if found[0].kind != "commit":
        raise BadPack(f"the snapshot {commit[:12]} is a {found[0].kind}")
    tree, parents = _fields(found[0].content)
    if len(parents) != 2:
        raise BadPack(f"{commit[:12]} is not an ocm snapshot (it needs HEAD and the index)")
    contents = []
    for oid, got in zip(parents, found[1:], strict=True):
        if got is None or got.kind != "commit":
            raise IncompletePack(f"the pack does not bring the commit {oid[:12]} it names")
        contents.append(got.content)
    index_tree, _ = _fields(contents[1])
    return Snapshot(commit, parents[0], branch, tree, index_tree)
