"""OpenCode's web app opened while OpenCode is still starting: a page that says so, then the app.

The real OpenCode, held back by a wrapper until the test lets it start, so the Manager is seen
in its 'starting' state for as long as the test needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.env import isolated_environ
from tests.support.processes import RunningManager, held_opencode, start_manager


def _manager_with_opencode_held(tmp_path: Path, opencode_bin: str) -> tuple[RunningManager, Path]:
    """A Manager whose OpenCode waits to start until the returned file exists."""
    go = tmp_path / "go"
    held = held_opencode(tmp_path / "opencode-held", opencode_bin, go)
    manager = start_manager(
        tmp_path / "data",
        tmp_path / "manager.log",
        "--opencode-bin",
        str(held),
        env=isolated_environ(tmp_path / "home"),
    )
    return manager, go


@pytest.mark.e2e
@pytest.mark.slow
def test_the_app_opened_while_opencode_starts_says_so_then_opens_by_itself(
    tmp_path: Path,
    opencode_bin: str,
    new_page: Callable[..., Any],
    sign_in: Callable[..., dict[str, Any]],
) -> None:
    manager, go = _manager_with_opencode_held(tmp_path, opencode_bin)
    try:
        app_url = manager.web_app_url()
        page = new_page()
        sign_in(page, manager)
        assert manager.opencode_state() == "starting"

        answer = page.goto(app_url + "/")
        assert answer is not None and answer.status == 502
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        expect(page.get_by_role("heading", level=1)).to_have_text("OpenCode is not available")
        expect(page.get_by_role("status")).to_contain_text("OpenCode is starting on the Manager")
        health = page.get_by_role("link", name="the Manager's Health page")
        expect(health).to_have_attribute("href", manager.url + "/health")

        go.touch()
        manager.wait_for_opencode()
        # The page tries again by itself: OpenCode's app replaces it, with no click.
        expect(page.get_by_text("OpenCode is not available")).to_have_count(0, timeout=60_000)
        expect(page.locator('script[src="/__ocm/terminal-notice.js"]')).to_have_count(1)
    finally:
        go.touch()
        manager.stop()


def test_start_up_ends_with_the_listening_line_after_the_web_app_is_known(
    tmp_path: Path, opencode_bin: str
) -> None:
    # "listening on" tells scripts and tests that start-up is over; the web app's line and
    # its port (which console pages link to) came after it, so a page or a test looking
    # right then could miss them.
    manager, _ = _manager_with_opencode_held(tmp_path, opencode_bin)  # never let go
    try:
        log = manager.log()  # as start_manager returned: the listening line is in
        assert "OpenCode's web app" in log, log
        assert log.index("OpenCode's web app") < log.index("listening on")
    finally:
        manager.stop()
