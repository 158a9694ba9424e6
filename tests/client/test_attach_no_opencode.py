"""Bare ``ocm`` and ``ocm use`` against a Manager with no OpenCode at all: one line naming
it, instead of a TUI that prints the Manager's sentence after its terminal set-up, with a
stack trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import AddedRepo, Recorder, run_ocm
from tests.support.env import without_opencode
from tests.support.processes import RunningManager


@pytest.fixture(params=["disabled", "not installed"])
def manager(
    request: pytest.FixtureRequest, manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> RunningManager:
    if request.param == "disabled":
        return manager_factory("--no-opencode")
    return manager_factory(env=without_opencode(tmp_path / "bin"))


def test_no_tui_is_started_on_a_manager_without_opencode(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    repo = add_repo("widget", origin="git@github.com:acme/widget.git")
    for args in (("use", "widget"), ()):
        result = run_ocm(*args, cwd=repo.source)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"ocm: no TUI can attach to the Manager at {login.url}: "), (
            lines[0]
        )
        # The reason, then one what-to-do that fits it (not a second one about
        # --no-opencode for a Manager that never had it).
        if "--no-opencode" in login.args:
            why = "the Manager runs without OpenCode (--no-opencode)"
            todo = "whoever runs the Manager restarts `ocm-manager serve` without --no-opencode"
        else:
            why = "OpenCode is not installed on the Manager"
            todo = (
                "whoever runs the Manager installs it there (`python3 -m install --manager`"
                " from the ocm checkout) and restarts `ocm-manager serve`, or starts it with"
                " --opencode-bin or --opencode-url"
            )
        assert f"{login.url}: {why}" in lines[0], lines[0]
        assert lines[0].endswith(f"; {todo}, then run the command again"), lines[0]
        assert lines[0].count(";") == 1, lines[0]
        assert not recorder.called()
    # Still the last used repo: push and pull take it among several with one origin.
    assert json.loads(run_ocm("status", "--json").stdout)["lastRepo"]["repoId"] == repo.repo_id
