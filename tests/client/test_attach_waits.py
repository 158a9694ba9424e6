"""Bare ``ocm`` right after the Manager started: its OpenCode may still be starting, and the
TUI would quit at its first failed request. ``ocm`` waits for it, as the quick start does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import AddedRepo, Recorder, run_ocm
from tests.support.processes import RunningManager

SLOWER = 8  # seconds the Manager's OpenCode takes to start on top of its own start


@pytest.fixture
def manager(
    manager_factory: Callable[..., RunningManager], tmp_path: Path, opencode_bin: str
) -> RunningManager:
    """A Manager whose real OpenCode starts late, as a first start on a busy machine does."""
    slow = tmp_path / "slow-opencode"
    slow.write_text(f'#!/bin/sh\n[ "$1" = serve ] && sleep {SLOWER}\nexec {opencode_bin} "$@"\n')
    slow.chmod(0o755)
    return manager_factory("--opencode-bin", str(slow))


def test_ocm_waits_for_the_managers_opencode_before_the_tui(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    repo = add_repo("widget", origin="git@github.com:acme/widget.git")
    result = run_ocm("use", "widget")
    assert result.returncode == 0, result.stderr
    assert "waiting for OpenCode on the Manager to start" in result.stderr, result.stderr
    assert recorder.read()["argv"][1:3] == ["attach", f"{login.url}/api/opencode-proxy"]
    # The TUI started only once OpenCode answered.
    assert "OpenCode on the Manager is running" in run_ocm("status").stdout
    assert f"attaching to #{repo.repo_id} widget" in result.stderr
