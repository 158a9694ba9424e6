"""A Manager stopped (SIGTERM to its whole process group, as systemd does) in the middle of
a pull: the pull says the Manager is stopping and to run it again, the checkout is unchanged,
and the next pull, once the Manager is back, brings everything."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.mirror.conftest import agent_commits, push_new
from tests.mirror.helpers import held_git, tree_listing
from tests.support.git import git
from tests.support.processes import Cli, RunningManager
from tests.support.proctree import wait_until


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
