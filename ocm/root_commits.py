"""A history's root commits (its commits without parents), walked once per history.

They match a checkout without ``origin`` to its Manager repo (SPEC §3): the laptop asks for
its checkout's, the Manager lists each repo's. ``git rev-list --max-parents=0`` walks the
whole history: 2.5 s on 500,000 commits (0.5 s with git's commit-graph). The roots of a
commit never change, so an answer is kept with the commit it is for; when HEAD has moved
on from that commit (new commits on top, a merge), only the commits since are walked, and
their roots join the known ones. Only a HEAD that does not descend from it (a reset, a
rewrite, another branch) is walked whole.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ocm.mirror import gitcmd

# A walk of a long history takes a while; one that takes longer than this is not waited for.
WALK_SECONDS = 120.0


class Known(NamedTuple):
    """The root commits of the commit ``head``, sorted."""

    head: str
    roots: list[str]


def walk(directory: Path, head: str, known: Known | None = None) -> Known:
    """The root commits of the commit ``head`` of the repository at ``directory``, from
    ``known`` when that is an answer for ``head`` or one of its ancestors. Raises GitError
    (a MirrorError) when git cannot say: objects missing, the walk out of time."""
    if known is not None and known.head == head:
        return known
    base = known if known is not None and known.head else None
    if base and not gitcmd.ok(directory, "merge-base", "--is-ancestor", base.head, head):
        base = None
    since = [f"^{base.head}"] if base else []
    done = gitcmd.run(directory, "rev-list", "--max-parents=0", head, *since, timeout=WALK_SECONDS)
    found = os.fsdecode(done.stdout).split()
    return Known(head, sorted({*found, *(base.roots if base else [])}))


def holds_history_of(directory: Path, roots: Sequence[str]) -> bool:
    """Whether the repository at ``directory`` has one of ``roots`` (another repository's
    root commits) among its objects: it holds that history, or did (an amended first
    commit keeps its old self). No roots known (git could not list them where they are)
    counts as yes: a transfer then says what that repository lacks."""
    from ocm.mirror import pack  # noqa: PLC0415 - bare `ocm` imports this module, not this

    return not roots or bool(pack.present(directory, list(roots)))


# Each side keeps its repository's answer here, beside the mirror's own record.
CACHE_NAME = "ocm-roots"


def kept_walk(directory: Path, head: str, known: Known | None = None) -> Known:
    """:func:`walk` from ``known``, else from the answer kept in the repository's ``.git``
    folder, keeping the new answer there for the next run (a linked worktree's ``.git`` is
    a file: nothing is kept, and it walks every time)."""
    git_dir = directory / ".git"
    known = known or read_cache(git_dir)
    found = walk(directory, head, known)
    if found != known:
        write_cache(git_dir, found)
    return found


def read_cache(git_dir: Path) -> Known | None:
    """The answer kept in ``git_dir``, if any and well-formed."""
    try:
        head, *roots = (git_dir / CACHE_NAME).read_text(encoding="ascii").split()
    except (OSError, ValueError):
        return None
    if not all(gitcmd.is_oid(oid) for oid in (head, *roots)):
        return None
    return Known(head, roots)


def write_cache(git_dir: Path, known: Known) -> None:
    """Keep ``known`` in ``git_dir`` (renamed into place: a reader sees the old answer or the
    new one). Best effort: a ``.git`` that cannot be written only walks again next time."""
    path = git_dir / CACHE_NAME
    temporary = path.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    try:
        temporary.write_text(" ".join([known.head, *known.roots]) + "\n", encoding="ascii")
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
