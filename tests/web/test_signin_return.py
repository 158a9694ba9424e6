"""Signing in returns to the page that asked for it, the console's or OpenCode's web app's,
and to no other site whatever the address says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from manager.web.opencode_app import encode_directory
from manager.web.return_to import signin_path
from tests.support.env import isolated_environ
from tests.support.processes import RunningManager
from tests.support.upstream import RecordingUpstream


def sign_in_here(page: Any, manager: RunningManager) -> None:
    page.fill("#token", manager.token)
    page.click("button[type=submit]")


def test_a_console_page_opened_signed_out_is_where_the_sign_in_returns(
    manager: RunningManager, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(manager.url + "/health")
    assert page.url == manager.url + signin_path("/health")
    sign_in_here(page, manager)
    page.wait_for_url(manager.url + "/health")
    assert page.text_content("h1") == "Health"


def test_a_link_into_opencodes_web_app_opened_signed_out_returns_there(
    tmp_path: Path,
    manager_factory: Callable[..., RunningManager],
    new_page: Callable[..., Any],
) -> None:
    env = isolated_environ(tmp_path / "home") | {"OCM_OPENCODE_PASSWORD": "stand-in"}
    with RecordingUpstream() as upstream:
        manager = manager_factory("--opencode-url", upstream.url, env=env)
        link = f"{manager.web_app_url()}/{encode_directory('/srv/repos/app')}/session?x=1"
        page = new_page()
        page.goto(link)
        assert page.url.startswith(manager.url + "/signin?next=")
        sign_in_here(page, manager)
        page.wait_for_url(link, wait_until="commit")


# Each would send the browser to another site, or a page of this origin that is not ours to
# name (browsers read a backslash as a slash and drop tabs and line breaks from a URL).
ELSEWHERE = [
    "//evil.com",
    "///evil.com",
    "https://evil.com",
    "https://evil.com/",
    "/\\evil.com",
    "\\\\evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "javascript:alert(1)",
    "evil.com",
]


@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_a_return_address_elsewhere_is_ignored(
    manager: RunningManager, new_page: Callable[..., Any], elsewhere: str
) -> None:
    page = new_page()
    page.goto(manager.url + signin_path(elsewhere))
    assert page.locator("input[name=next]").count() == 0
    sign_in_here(page, manager)
    page.wait_for_url(manager.url + "/repos")


def test_a_return_address_elsewhere_sent_with_the_form_is_ignored(manager: RunningManager) -> None:
    """The form's hidden field is the browser's to change: checked again when it arrives,
    an address of the app's host on another port too."""
    port = manager.url.rsplit(":", 1)[1]
    for elsewhere in ("//evil.com", f"http://127.0.0.1:{port}@evil.com/", "/\\evil.com"):
        answer = requests.post(
            manager.url + "/signin",
            data={"token": manager.token, "next": elsewhere},
            headers={"Origin": manager.url},
            allow_redirects=False,
            timeout=10,
        )
        assert (answer.status_code, answer.headers["Location"]) == (303, "/repos"), elsewhere
