"""What the receiving side writes while a transfer is under way is not overwritten.

What a switch would lose is weighed against a look at the receiving work tree taken while
the pack is checked and its files are staged (a pull's: before it downloads). An agent on
the Manager, or an editor on the laptop, may write after that look: the switch, checking
again right before it starts, refuses then, and nothing changes. Here git is paused at
``checkout-index`` (the staging of the incoming files, after the look) while the test
writes. And what did not change since the look must not read as changed: that refusal
would come back on every try.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mirror.conftest import Pushed, agent_commits, push_new
from tests.mirror.helpers import paused_git
from tests.support.git import git
from tests.support.processes import Cli, RunningManager
from tests.support.proctree import wait_until

CHANGED = "changed while this transfer was under way"


def _meanwhile(ocm: Cli, laptop: Path, command: str, reached: Path, go: Path, act) -> str:  # type: ignore[no-untyped-def]
    """Run ``ocm <command>`` in ``laptop``, ``act()`` while git is paused; its one line."""
    running = ocm.start(laptop, command)
    try:
        assert wait_until(reached.exists, 60)
        act()
    finally:
        go.touch()
    _, said = running.communicate(timeout=120)
    assert running.returncode == 1, said
    assert said.count("\n") == 1, said
    return said


@pytest.mark.parametrize("agent", ["edits a file the push replaces", "commits"])
def test_an_agent_writing_while_the_manager_checks_a_push_keeps_its_work(
    agent: str, manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    paused = paused_git(tmp_path / "paused-git", "checkout-index")
    paused.go.touch()  # the push that sets the scene goes through
    ocm = Cli(manager_factory("--no-opencode", env=paused.env))
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    (p.laptop / "README.md").write_text("laptop edit\n")
    head = git(p.directory, "rev-parse", "HEAD")
    paused.go.unlink()

    def act() -> None:
        nonlocal head
        if agent == "commits":
            head = agent_commits(p)
        else:
            (p.directory / "README.md").write_text("agent edit\n")

    said = _meanwhile(ocm, p.laptop, "push", paused.reached, paused.go, act)

    assert f"The Manager's copy of proj {CHANGED}" in said, said
    assert ("its HEAD moved" if agent == "commits" else "(README.md changed)") in said, said
    assert said.rstrip().endswith(
        "nothing was changed; run the command again: it then weighs that change"
    ), said
    assert git(p.directory, "rev-parse", "HEAD") == head
    if agent == "commits":
        assert (p.directory / "agent.txt").is_file()
    else:
        assert (p.directory / "README.md").read_text() == "agent edit\n"
    # Run again, the push weighs the agent's work and refuses as both sides changed.
    again = ocm(p.laptop, "push")
    assert again.returncode == 1
    assert CHANGED not in again.stderr


def test_an_edit_saved_while_a_pull_runs_is_not_overwritten(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pushed("proj")
    (p.directory / "README.md").write_text("agent edit\n")
    paused = paused_git(tmp_path / "paused-git", "checkout-index")
    monkeypatch.setenv("PATH", paused.env["PATH"])

    def act() -> None:
        (p.laptop / "README.md").write_text("saved during the pull\n")

    said = _meanwhile(ocm, p.laptop, "pull", paused.reached, paused.go, act)

    assert f"This checkout {CHANGED} (README.md changed)" in said, said
    assert (p.laptop / "README.md").read_text() == "saved during the pull\n"
    assert (p.directory / "README.md").read_text() == "agent edit\n"


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_forced_transfer_replaces_a_new_symlink_of_the_receiver(
    command: str, ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The receiver replaced a tracked file with a symlink to a path no file of its history
    names. Git compares a link with its index entry by reading the entry's blob, which the
    receiver's look (it writes no blobs) never wrote: the check right before the switch
    found the link changed on every try, and `--force` could never get past it."""
    p = pushed("proj")
    receiver, sender = (p.directory, p.laptop) if command == "push" else (p.laptop, p.directory)
    (receiver / "README.md").unlink()
    (receiver / "README.md").symlink_to("notes/moved-by-an-agent.md")
    (sender / "README.md").write_text("the sender's edit\n")

    refused = ocm(p.laptop, command)
    assert refused.returncode == 1 and "uncommitted changes" in refused.stderr, refused.stderr

    forced = ocm(p.laptop, command, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (receiver / "README.md").read_text() == "the sender's edit\n"
    stash = re.search(r"`git stash apply (\w+)`", forced.stdout)
    assert stash, forced.stdout
    saved = git(receiver, "ls-tree", stash[1], "README.md")
    assert saved.startswith("120000 "), saved
    assert git(receiver, "cat-file", "blob", saved.split()[2]) == "notes/moved-by-an-agent.md"
