"""Browser fixtures for every test of the Manager's web pages (the console and OpenCode's app).

Headless Chromium from Debian's ``chromium`` package (``$OCM_TEST_CHROMIUM`` overrides the
path), driven by Playwright's sync API — never a browser download. Missing is a failure.

- ``chromium``: one browser for the whole test session.
- ``new_page(**context_options)``: a page in a fresh context (its own cookies), closed at the
  end of the test; e.g. ``new_page(viewport={"width": 390, "height": 844})`` for a phone.
- ``sign_in(page, manager, token=None)``: sign ``page`` in to a running Manager through its
  sign-in form (``manager.token`` unless ``token`` is given) and return the session cookie
  as Playwright reports it (a dict with ``name``, ``value``, ``httpOnly``, ``sameSite``,
  ``secure``).
- ``cookie_name(manager)``: the name of that Manager's sign-in cookie (one per data dir).
- ``console``: a Manager without OpenCode plus a page signed in to it, as ``(manager, page)``.
- ``live``: a Manager running the real OpenCode, for one test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from manager.web.signin import COOKIE_PREFIX
from tests.support.processes import RunningManager, opencode_manager

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Read at import: the autouse isolated_env fixture clears OCM_* before each test runs.
CHROMIUM = os.environ.get("OCM_TEST_CHROMIUM") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; run the tests via scripts/test")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def make(**context_options: Any) -> Any:
        context = chromium.new_context(**context_options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def cookie_name(manager: RunningManager) -> str:
    from manager.registry import Registry
    from manager.web.signin import cookie_name as named

    return named(Registry(manager.data_dir / "manager.db").instance_id())


def session_cookie(page: Any, manager: RunningManager | None = None) -> dict[str, Any] | None:
    """``page``'s sign-in cookie for ``manager`` (for any Manager when None)."""
    found = [c for c in page.context.cookies() if c["name"].startswith(COOKIE_PREFIX)]
    if manager is not None:
        found = [c for c in found if c["name"] == cookie_name(manager)]
    return found[0] if found else None


@pytest.fixture
def sign_in() -> Callable[..., dict[str, Any]]:
    def run(page: Any, manager: RunningManager, token: str | None = None) -> dict[str, Any]:
        page.goto(manager.url + "/")
        page.fill("#token", token or manager.token)
        page.click("button[type=submit]")
        page.wait_for_url(manager.url + "/repos")
        cookie = session_cookie(page, manager)
        assert cookie is not None, "signed in but no session cookie"
        return cookie

    return run


@pytest.fixture
def console(
    manager: RunningManager,
    new_page: Callable[..., Any],
    sign_in: Callable[..., dict[str, Any]],
) -> tuple[RunningManager, Any]:
    page = new_page()
    sign_in(page, manager)
    return manager, page


@pytest.fixture
def live(tmp_path: Path, opencode_bin: str) -> Iterator[RunningManager]:
    with opencode_manager(tmp_path, opencode_bin) as running:
        yield running
