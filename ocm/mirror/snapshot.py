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

from dataclasses import dataclass
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.errors import BadPack, IncompletePack, MirrorError
from ocm.mirror.select import Selection
from ocm.mirror.state import index_tree, snapshot


@dataclass(frozen=True)
class Snapshot:
    commit: str
    head: str
    branch: str | None  # None: HEAD is detached
    tree: str  # the work tree
    index_tree: str


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


def _commit_time(root: Path, commit: str) -> str:
    """The committer time of ``commit`` as git's raw date ("<seconds> +0000")."""
    raw = gitcmd.run(root, "cat-file", "commit", commit).stdout.split(b"\n\n", 1)[0]
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("committer "):
            return line.rsplit(" ", 2)[-2] + " +0000"
    return "0 +0000"


def build(root: Path, selection: Selection, head: str, branch: str | None) -> Snapshot:
    """Write the snapshot commit of the checkout at ``root`` (objects only, no ref)."""
    tree = snapshot(root, selection, write_blobs=True)
    if tree is None:
        raise MirrorError(
            f"git could not describe the work tree of {root} (is a merge or rebase in "
            "progress?); finish or abort it, then run the command again"
        )
    staged = index_tree(root)
    if staged is None:
        raise MirrorError(
            f"the index of {root} has unresolved conflicts; resolve them (or "
            "`git merge --abort`), then run the command again"
        )
    date, on = _commit_time(root, head), branch or "detached HEAD"
    index_commit = commit(root, staged, [head], f"ocm: index on {on}", date)
    snap = commit(root, tree, [head, index_commit], f"ocm: snapshot of {on}", date)
    return Snapshot(snap, head, branch, tree, staged)


def _commit_fields(root: Path, env: dict[str, str], oid: str) -> tuple[str, list[str]]:
    """(tree, parents) of commit ``oid``; IncompletePack when it is not there."""
    done = gitcmd.run(root, "cat-file", "commit", oid, env=env, check=False)
    if done.returncode != 0:
        kind = gitcmd.run(root, "cat-file", "-t", oid, env=env, check=False)
        if kind.returncode == 0:
            raise BadPack(f"the snapshot {oid[:12]} is a {kind.stdout.decode().strip()}")
        raise IncompletePack(f"the pack does not bring the commit {oid[:12]} it names")
    tree, parents = "", []
    for line in done.stdout.split(b"\n\n", 1)[0].decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
    return tree, parents


def read_snapshot(root: Path, env: dict[str, str], commit: str, branch: str | None) -> Snapshot:
    """The snapshot commit ``commit`` as it arrived (``env`` sees the quarantine)."""
    if not gitcmd.is_oid(commit):
        raise BadPack(f"the snapshot id {commit[:80]!r} is not an object id")
    if branch is not None and (
        branch.startswith("-") or not gitcmd.ok(root, "check-ref-format", f"refs/heads/{branch}")
    ):
        raise BadPack(f"the branch name {branch[:80]!r} is not a valid git branch name")
    tree, parents = _commit_fields(root, env, commit)
    if len(parents) != 2:
        raise BadPack(f"{commit[:12]} is not an ocm snapshot (it needs HEAD and the index)")
    head, index_commit = parents
    index_tree, _ = _commit_fields(root, env, index_commit)
    _commit_fields(root, env, head)
    return Snapshot(commit, head, branch, tree, index_tree)
