"""A ``push --create`` cut off by a Manager that died: the next start forgets the half-made
repo, and the same ``push --create`` makes it again."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.mirror.helpers import held_git, rich_repo, tree_listing
from tests.support.processes import Cli, RunningManager
from tests.support.proctree import wait_until


def test_a_push_create_cut_off_by_a_killed_manager_can_run_again(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    env, flag = held_git(tmp_path / "held-bin", "index-pack")
    data_dir = tmp_path / "data"
    manager = manager_factory("--no-opencode", data_dir=data_dir, env=env)
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    ocm = Cli(manager)

    pushing = ocm.start(laptop, "push", "--create", "--yes")
    try:
        assert wait_until(flag.exists, timeout=60), manager.log()
        os.killpg(manager.process.pid, signal.SIGKILL)
        _, said = pushing.communicate(timeout=60)
    finally:
        if pushing.poll() is None:
            pushing.kill()
    assert pushing.returncode == 1
    assert "the push to proj broke off" in said and "run `ocm push --create` again" in said

    again = Cli(manager_factory("--no-opencode", data_dir=data_dir, token=manager.token))
    assert "forgot proj" in again.manager.log()
    done = again(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    assert [(r["name"], r["status"]) for r in again.repos(laptop)] == [("proj", "ready")]
    directory = data_dir / "repos" / "proj"
    assert tree_listing(directory) == tree_listing(laptop)
