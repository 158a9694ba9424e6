"""The sending side: the checkout's snapshot, and the pack of what the receiver lacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocm.mirror import pack, snapshot
from ocm.mirror.errors import MirrorError
from ocm.mirror.select import Selection, select
from ocm.mirror.state import RepoState, read_head


@dataclass(frozen=True)
class Outgoing:
    root: Path
    selection: Selection
    state: RepoState
    snapshot: snapshot.Snapshot

    def open_pack(self, receiver_tips: list[str]) -> pack.PackStream:
        """A pack of the snapshot minus what ``receiver_tips`` (those known here) reach."""
        haves = pack.present(self.root, receiver_tips)
        return pack.PackStream(self.root, self.snapshot.commit, haves)


def prepare(root: Path) -> Outgoing:
    """Look at the repo once: what travels, HEAD, branch, and the snapshot commit of it all."""
    selection = select(root)
    head = read_head(root)
    if head.commit is None:
        raise MirrorError(f"{root} has no commit yet; commit once, then mirror it")
    snap = snapshot.build(root, selection, head)
    return Outgoing(
        root, selection, RepoState(head.commit, head.branch, head.tree, snap.tree), snap
    )
