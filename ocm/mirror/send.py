"""The sending side: what is about to travel, and the tar stream of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ocm.mirror.archive import Progress, pack
from ocm.mirror.errors import MirrorError
from ocm.mirror.select import Selection, git_dir_files, select
from ocm.mirror.state import RepoState, head_info, repo_state


@dataclass(frozen=True)
class Outgoing:
    root: Path
    selection: Selection
    state: RepoState

    @property
    def names(self) -> list[str]:
        return git_dir_files(self.root) + self.selection.files


def prepare(root: Path, *, with_snapshot: bool = True) -> Outgoing:
    """Look at the repo once: what travels, HEAD, branch and (unless told not to) the
    snapshot being sent."""
    selection = select(root)
    if with_snapshot:
        state = repo_state(root, selection)
    else:
        head, branch = head_info(root)
        state = RepoState(head, branch, None, None)
    if state.head is None:
        raise MirrorError(f"{root} has no commit yet; commit once, then mirror it")
    return Outgoing(root, selection, state)


def write_archive(
    outgoing: Outgoing, out: IO[bytes], *, compress: bool, progress: Progress | None = None
) -> None:
    pack(outgoing.root, outgoing.names, out, compress=compress, progress=progress)
