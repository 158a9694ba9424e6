"""The sending side: the checkout's snapshot, and the pack of what the receiver lacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocm.mirror import gitcmd, pack, snapshot
from ocm.mirror.errors import MirrorError
from ocm.mirror.select import Selection, select
from ocm.mirror.state import RepoState, head_info


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
    head, branch = head_info(root)
    if head is None:
        raise MirrorError(f"{root} has no commit yet; commit once, then mirror it")
    snap = snapshot.build(root, selection, head, branch)
    head_tree = gitcmd.maybe(root, "rev-parse", f"{head}^{{tree}}")
    return Outgoing(root, selection, RepoState(head, branch, head_tree, snap.tree), snap)
