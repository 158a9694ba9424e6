"""A form the Manager refuses, met in a browser: a console page with the message and a way
on, never the API's bare JSON; the JSON twin keeps the API's shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from manager.web.return_to import signin_path
from tests.support.auth import bearer
from tests.support.processes import RunningManager
from tests.web.test_console import json_twin, row


def refusal_page(page: Any) -> str:
    assert page.locator("link[rel=stylesheet]").count() == 1, page.content()
    return str(page.text_content("[role=alert]"))


def test_removing_a_repo_removed_meanwhile_in_another_tab(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    page.fill("input[name=source]", str(git_repo("app")))
    page.click("text=Add repo")
    row(page, "app").locator(".state-ready").wait_for()
    row(page, "app").get_by_role("link", name="Remove app…").click()
    other = page.context.new_page()
    other.goto(page.url)
    other.click("button.danger")
    other.wait_for_url(manager.url + "/repos")

    page.click("button.danger")
    assert "There is no repo" in refusal_page(page)
    page.click("text=Back to the repos")
    page.wait_for_url(manager.url + "/repos")
    assert page.is_visible("text=No repos yet")
    twin = page.request.get(manager.url + "/repos/1/remove?format=json")
    assert twin.status == 404 and twin.json()["error"] == "not_found"


def test_reloading_the_new_token_page_explains_itself(
    console: tuple[RunningManager, Any],
) -> None:
    manager, page = console
    page.goto(manager.url + "/settings")
    page.check("input[name=confirm]")
    page.click("button.danger")
    assert page.text_content("h1") == "New Manager token"
    page.reload()  # sends the form again
    assert "This form was sent before" in refusal_page(page)
    page.click("nav >> text=Settings")  # still signed in, the console's way on is there
    page.wait_for_url(manager.url + "/settings")


def test_a_form_sent_after_the_token_was_rotated_elsewhere_asks_to_sign_in_again(
    console: tuple[RunningManager, Any],
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
) -> None:
    manager, page = console
    page.goto(manager.url + "/settings")
    page.check("input[name=confirm]")
    elsewhere = new_page()
    sign_in(elsewhere, manager)
    elsewhere.goto(manager.url + "/settings")
    elsewhere.check("input[name=confirm]")
    elsewhere.click("button.danger")
    token = elsewhere.input_value("#new-token")

    page.click("button.danger")
    assert "Sign in again" in refusal_page(page)
    assert token not in page.content()
    assert page.locator("nav").count() == 0  # signed out: no Repos or Sign out to offer
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(manager.url + "/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(manager.url + "/repos")
    assert json_twin(page, "/repos?format=json")["repos"] == []


def test_a_page_whose_sign_in_ended_says_why_on_the_sign_in_page(
    console: tuple[RunningManager, Any],
) -> None:
    manager, page = console
    # Off the repos page first: its poll, meeting the rotation, would go to the sign-in page
    # itself, and cut the navigation below short.
    page.goto("about:blank")
    token = manager.cli("token", "rotate").stdout.strip()
    page.goto(manager.url + "/health")
    page.wait_for_url(manager.url + signin_path("/health"))
    assert "token was rotated" in refusal_page(page)
    assert token not in page.content()
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(manager.url + "/health")
    # Signed out on purpose, the sign-in page has nothing to explain.
    page.click("text=Sign out")
    page.wait_for_url(manager.url + "/signin")
    assert page.locator("[role=alert]").count() == 0


def test_a_refusal_naming_a_long_path_fits_a_phone(
    manager: RunningManager,
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    tmp_path: Path,
) -> None:
    page = new_page(viewport={"width": 390, "height": 780}, is_mobile=True)
    sign_in(page, manager)
    folder = tmp_path / ("unbroken-folder-name" * 8)
    folder.mkdir()
    page.fill("input[name=source]", str(folder))
    page.click("text=Add repo")
    assert "not a git repository" in refusal_page(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_name_too_long_is_refused_for_its_length(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    _, page = console
    page.fill("input[name=source]", str(git_repo("app")))
    page.fill("input[name=name]", "n" * 150)
    page.click("text=Add repo")
    assert "is 150 characters long; use 100 at most" in refusal_page(page)
    assert page.input_value("input[name=name]") == "n" * 150


# A page load the console has no page for: a form's address typed in, a stray slash, a typo.
NO_SUCH_PAGE = {"/settings/token": 405, "/signout": 405, "/repos/": 404, "/nowhere": 404}


def test_an_address_with_no_page_is_a_console_page_signed_in_or_not(
    console: tuple[RunningManager, Any], new_page: Callable[..., Any]
) -> None:
    manager, page = console
    signed_out = new_page()
    for path, status in NO_SUCH_PAGE.items():
        answer = page.goto(manager.url + path)
        assert answer is not None and answer.status == status, path
        assert "not_signed_in" not in page.content() and "unauthorized" not in page.content()
        assert path in refusal_page(page)
        page.click("text=Back to the repos")
        page.wait_for_url(manager.url + "/repos")

        signed_out.goto(manager.url + path)
        assert signed_out.url.startswith(manager.url + "/signin"), path
        assert signed_out.text_content("h1") == "Sign in"


def test_an_api_client_still_gets_json_at_an_address_with_no_page(
    console: tuple[RunningManager, Any],
) -> None:
    manager, _ = console
    for path in NO_SUCH_PAGE:
        without_token = requests.get(manager.url + path, timeout=10)
        assert without_token.status_code == 401, path
        assert without_token.json()["error"] == "unauthorized"
        with_token = requests.get(manager.url + path, headers=bearer(manager.token), timeout=10)
        assert with_token.status_code == NO_SUCH_PAGE[path], path
        assert set(with_token.json()) == {"error", "message"}
