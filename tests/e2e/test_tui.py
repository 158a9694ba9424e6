"""As a user would: in a clone of a Manager repo, bare ``ocm`` becomes the real OpenCode TUI,
attached through the Manager's proxy to the Manager's own ``opencode serve``, and the TUI shows
the Manager-side directory in its footer."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.git import git
from tests.support.processes import ocm_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ORIGIN = "https://git.example.invalid/team/project.git"


def tmux(socket: Path, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-S", str(socket), *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def test_bare_ocm_opens_the_tui_on_the_manager_side_directory(
    manager_factory, opencode_bin, git_repo, tmp_path
):
    assert shutil.which("tmux"), "tmux is part of the test set-up (scripts/test installs it)"
    source = git_repo("project", origin=ORIGIN, branch="main")
    manager = manager_factory("--opencode-bin", opencode_bin)
    manager.cli("repo", "add", str(source))
    workspaces = requests.get(
        f"{manager.url}/api/internal/opencode-workspaces",
        headers={"Authorization": f"Bearer {manager.token}"},
        timeout=10,
    ).json()["workspaces"]
    assert len(workspaces) == 1
    remote_dir = workspaces[0]["directory"]

    laptop = tmp_path / "laptop" / "project"
    subprocess.run(["git", "clone", "-q", str(source), str(laptop)], check=True)
    git(laptop, "remote", "set-url", "origin", ORIGIN)

    env = dict(os.environ, OCM_OPENCODE_BIN=opencode_bin, TERM="xterm-256color")
    login = subprocess.run(
        [*ocm_command("login", manager.url)],
        input=manager.token + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr

    socket = tmp_path / "tmux.sock"  # a private tmux server that inherits this test's env
    exports = " ".join(
        f"{key}={shlex.quote(value)}"
        for key, value in env.items()
        if key.startswith(("OCM_", "HOME", "XDG_", "PATH", "PYTHON"))
    )
    command = f"cd {shlex.quote(str(laptop))} && env {exports} {shlex.join(ocm_command())}"
    tmux(socket, "new-session", "-d", "-s", "ocm", "-x", "160", "-y", "45", command)
    expected = f"{remote_dir}:main"
    screen = ""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = tmux(socket, "capture-pane", "-p", "-t", "ocm")
            if expected in screen:
                break
            time.sleep(0.5)
        assert expected in screen, f"the TUI never showed {expected!r}; last screen:\n{screen}"
        # The TUI holds an event stream for that directory: the repo is in use right now.
        head = requests.get(
            f"{manager.url}/api/internal/repo-mirror/{workspaces[0]['repoId']}/head",
            headers={"Authorization": f"Bearer {manager.token}"},
            timeout=10,
        )
        assert head.json()["inUse"] is True
        assert manager.token not in screen

        # The Manager stops under the attached TUI: status and list say so plainly.
        manager.stop()
        status = subprocess.run(
            ocm_command("status"), capture_output=True, text=True, env=env, timeout=60
        )
        assert status.returncode == 0, status.stderr
        assert "reachable: NO, the Manager is not reachable (connection refused)" in status.stdout
        assert f"opencode:  {opencode_bin} (1.18.33, OCM_OPENCODE_BIN)" in status.stdout
        listed = subprocess.run(
            ocm_command("list"), capture_output=True, text=True, env=env, timeout=60
        )
        assert listed.returncode == 1
        assert f"cannot reach the Manager at {manager.url} (connection refused)" in listed.stderr
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, timeout=30)
