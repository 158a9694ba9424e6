"""A disk that fills up, on real small disks (tmpfs): every failure is one line that says the
disk is full and whose, and leaves every repo as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocm.mirror import history, swap
from ocm.mirror import receive as receive_mod
from ocm.mirror.errors import NoSpace
from tests.mirror.helpers import repo_listing, rich_repo, transfer
from tests.support.disk import fill_up, needs_mount, small_disk
from tests.support.git import git


def _on_a_full_disk(disk: Path, step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` run once another program has filled ``disk`` up, and keeps it full: what
    the failed step frees is taken again before anything else runs."""

    def run(*args: Any, **kwargs: Any) -> Any:
        fill_up(disk)
        try:
            return step(*args, **kwargs)
        finally:
            fill_up(disk)

    return run


# The steps of the switch that write, once the incoming files are staged.
SWITCH_STEPS = {
    "the old index's copy": (receive_mod, "copy_index"),
    # Half written, it was kept as a switch to undo, and its staged files with it: on the
    # full disk, until the Manager's next start.
    "the plan": (swap, "write_plan"),
    # Written once HEAD had moved, which the undo could then not move back: git writes a
    # lock file to move a ref, and the disk had no room for it.
    "the new index": (history, "rebuild_index"),
    # git says only "couldn't write '.git/refs/heads/main.lock'" of a full disk.
    "the branch and HEAD": (history, "move_head"),
}


@needs_mount
@pytest.mark.parametrize("step", SWITCH_STEPS)
def test_a_disk_that_fills_up_during_the_switch_is_named_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The receiving disk fills up once the pack is in and its files are staged: the
    transfer says the disk is full (a pull said its download broke off, the Manager that it
    hit an unexpected error) and the repo is as it was: files, index, HEAD, refs, stash."""
    sender = rich_repo(tmp_path / "sender")
    with small_disk(tmp_path / "disk", "100m") as disk:
        receiver = disk / "proj"
        git(sender.parent, "clone", "-q", str(sender), str(receiver))
        (receiver / "README.md").write_text("stashed here\n")
        git(receiver, "stash", "-q")
        (receiver / "debug.log").write_text("ignored, kept\n")
        (sender / "src/app.py").write_text("print('changed')\n")
        (sender / "src/more.py").write_text("more = 1\n")
        git(sender, "add", "-A")
        git(sender, "commit", "-q", "-m", "more")
        (sender / "README.md").write_text("# uncommitted\n")
        before = repo_listing(receiver)
        module, name = SWITCH_STEPS[step]
        monkeypatch.setattr(module, name, _on_a_full_disk(disk, getattr(module, name)))

        with pytest.raises(NoSpace, match=r"disk\b.* is full"):
            transfer(sender, receiver, disk)

        assert repo_listing(receiver) == before
        assert not list((disk / "staging").iterdir())
