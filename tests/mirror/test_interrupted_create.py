"""A ``push --create`` cut off by a Manager that died: the next start forgets the half-made
repo, and the same ``push --create`` makes it again."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.mirror.helpers import rich_repo, tree_listing
from tests.support.processes import Cli, RunningManager, ocm_command
from tests.support.proctree import wait_until

# The Manager's git, stopped for good once it checks an incoming pack: the push is then
# in the middle of landing, and stays there until the test kills the Manager.
HELD_GIT = """#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = index-pack ]; then touch "{flag}"; kill -STOP $$; fi
done
exec "{git}" "$@"
"""


def test_a_push_create_cut_off_by_a_killed_manager_can_run_again(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    held = tmp_path / "held-bin"
    held.mkdir()
    flag = tmp_path / "index-pack-started"
    stand_in = held / "git"
    stand_in.write_text(HELD_GIT.format(flag=flag, git=shutil.which("git")))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    data_dir = tmp_path / "data"
    env = os.environ | {"PATH": f"{held}{os.pathsep}{os.environ['PATH']}"}
    manager = manager_factory("--no-opencode", data_dir=data_dir, env=env)
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    ocm = Cli(manager)

    pushing = subprocess.Popen(
        ocm_command("push", "--create", "--yes"), cwd=laptop, env=ocm.env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
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
