"""The console fits its window whatever the names: a repo name of 100 letters without a
break (the longest allowed) wraps, on a desktop and on a phone, instead of widening the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import RunningManager
from tests.web.test_console import row

LONGEST_NAME = "n" * 100
SCREENS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 740}}


@pytest.mark.parametrize("screen", SCREENS)
def test_a_100_letter_name_fits_the_repos_and_remove_pages(
    manager: RunningManager,
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    git_repo: Callable[..., Path],
    screen: str,
) -> None:
    viewport = SCREENS[screen]
    manager.cli("repo", "add", str(git_repo("app")), "--name", LONGEST_NAME)
    page = new_page(viewport=viewport, is_mobile=screen == "phone")
    sign_in(page, manager)
    row(page, LONGEST_NAME).locator(".state-ready").wait_for()

    def fits() -> bool:
        return bool(page.evaluate("document.documentElement.scrollWidth") <= viewport["width"])

    assert fits(), "the Repos page is wider than the window"
    page.get_by_role("link", name=f"Remove {LONGEST_NAME}…").click()
    assert page.text_content("h1") == f"Remove {LONGEST_NAME}?"
    # The heading is there as soon as the HTML is; the width is the page's once its
    # stylesheet applies (measured before, the name did not wrap yet: one run in many).
    page.wait_for_load_state("load")
    assert fits(), "the Remove page is wider than the window"
    cancel = page.get_by_role("link", name="Cancel").bounding_box()
    assert cancel is not None and cancel["x"] + cancel["width"] <= viewport["width"]
