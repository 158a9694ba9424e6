"""A Manager stopped in the middle of its work, as systemd stops it (SIGTERM to its whole
process group, then SIGKILL): a pull cut off says the Manager is stopping and to run it
again, the checkout is unchanged, and the next pull, once the Manager is back, brings
everything; a refresh of a repo's index cut off leaves no lock on it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from ocm.mirror.receive import settling_marks
from tests.mirror.conftest import agent_commits, push_new
from tests.mirror.helpers import STUCK_ATTRIBUTES, held_git, stuck_git, tree_listing
from tests.support.git import git
from tests.support.processes import Cli, RunningManager
from tests.support.proctree import group_alive, wait_until


def test_a_pull_cut_off_by_a_stopping_manager_says_so_and_can_run_again(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    arm = tmp_path / "arm"  # the push that sets the scene goes through
    env, flag = held_git(tmp_path / "held-bin", "pack-objects", arm)
    data_dir = tmp_path / "data"
    manager = manager_factory("--no-opencode", data_dir=data_dir, env=env)
    ocm = Cli(manager)
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    agent = agent_commits(p)
    before = tree_listing(p.laptop)

    arm.touch()
    pulling = ocm.start(p.laptop, "pull")
    try:
        assert wait_until(flag.exists, timeout=60), manager.log()
        os.killpg(manager.process.pid, signal.SIGTERM)  # git's SIGTERM waits for its SIGCONT
        wait_until(lambda: "stopping" in manager.log(), timeout=30)
        os.killpg(manager.process.pid, signal.SIGCONT)
        _, said = pulling.communicate(timeout=60)
    finally:
        if pulling.poll() is None:
            pulling.kill()
    assert pulling.returncode == 1
    assert said.count("\n") == 1, said
    assert "The Manager is stopping" in said, said
    assert said.rstrip().endswith("run the command again once the Manager is back"), said
    assert tree_listing(p.laptop) == before

    arm.unlink()
    again = Cli(manager_factory("--no-opencode", data_dir=data_dir, token=manager.token))
    done = again(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert git(p.laptop, "rev-parse", "HEAD") == agent


def test_a_manager_killed_while_it_refreshes_an_index_leaves_no_lock(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """After a push of many files the Manager refreshes the repo's index. Killed meanwhile,
    git's own refresh left .git/index.lock behind: every later transfer, and the agent's
    `git add`, was refused until someone deleted it. Once the Manager is back, the lock is
    gone and nothing in the repo is lost."""
    env, stuck = stuck_git(tmp_path / "stuck-bin", "--refresh")
    data_dir = tmp_path / "data"
    manager = manager_factory("--no-opencode", data_dir=data_dir, env=env)
    ocm = Cli(manager)
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    (p.directory / ".git" / "info" / "attributes").write_text(STUCK_ATTRIBUTES)
    for n in range(150):  # enough for the refresh after the answer (SETTLE_AFTER_FILES)
        (p.laptop / "many" / f"{n}.txt").parent.mkdir(exist_ok=True)
        (p.laptop / "many" / f"{n}.txt").write_text(f"file {n}\n")
    # In the index: the Manager's copy gets their entries without stat data, and the
    # refresh then hashes them.
    git(p.laptop, "add", "many")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert wait_until(stuck.exists, timeout=60), manager.log()
    assert (p.directory / ".git" / "index.lock").exists()  # taken, git at work under it
    assert settling_marks(p.directory)

    os.killpg(manager.process.pid, signal.SIGKILL)
    manager.process.wait(timeout=30)
    assert wait_until(lambda: not group_alive(manager.process.pid), timeout=30)
    again = Cli(manager_factory("--no-opencode", data_dir=data_dir, token=manager.token))

    assert not (p.directory / ".git" / "index.lock").exists()
    assert settling_marks(p.directory) == []  # no wait for a refresh gone
    assert tree_listing(p.directory) == tree_listing(p.laptop)
    assert git(p.directory, "status", "--porcelain") == git(p.laptop, "status", "--porcelain")
    (p.laptop / "README.md").write_text("# proj\npushed after the restart\n")
    done = again(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert tree_listing(p.directory) == tree_listing(p.laptop)
    (p.directory / "agent.txt").write_text("the agent's file\n")
    git(p.directory, "add", "agent.txt")
