"""A repo whose folder was deleted on the Manager (``rm -rf <data>/repos/x``): the console and
the log say the folder is missing, never that OpenCode is silent or git not installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.auth import bearer
from tests.support.env import isolated_environ
from tests.support.processes import RunningManager
from tests.support.upstream import RecordingUpstream
from tests.web.test_console import json_twin, row


def test_a_repo_whose_folder_was_deleted_says_so_and_offers_no_session(
    tmp_path: Path,
    manager_factory: Callable[..., RunningManager],
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    git_repo: Callable[..., Path],
) -> None:
    # A stand-in for OpenCode, so that the repo has an "Open in OpenCode" link to lose.
    env = isolated_environ(tmp_path / "home") | {"OCM_OPENCODE_PASSWORD": "stand-in"}
    with RecordingUpstream() as upstream:
        manager = manager_factory("--opencode-url", upstream.url, env=env)
        manager.cli("repo", "add", str(git_repo("gone")))
        page = new_page()
        sign_in(page, manager)
        gone = row(page, "gone")
        gone.get_by_role("link", name="Open gone in OpenCode").wait_for()
        folder = manager.data_dir / "repos" / "gone"

        shutil.rmtree(folder)

        gone.locator(".state-missing").wait_for()
        status = gone.locator("[data-label=Status]").inner_text()
        assert f"its folder {folder} is missing" in status
        assert "remove the repo" in status
        assert gone.get_by_role("link", name="Open gone in OpenCode").count() == 0
        listed = json_twin(page, "/repos?format=json")["repos"]
        assert [(r["status"], r["sessionsUrl"]) for r in listed] == [("missing", None)]
        assert "is missing" in listed[0]["error"]

        # A laptop's bare `ocm` lists the repos: the log names the folder, not git.
        requests.get(
            manager.url + "/api/internal/opencode-workspaces",
            headers=bearer(manager.token),
            timeout=10,
        ).raise_for_status()
        log = (manager.data_dir / "logs" / "manager.log").read_text()
        assert f"cannot run git in {folder}: {os.strerror(2)}" in log
        assert "install git" not in log
