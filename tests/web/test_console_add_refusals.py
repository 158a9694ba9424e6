"""The console's "Add a repo" when the source or the name is wrong, or the URL holds a
password: a message on the page, nothing registered, no traceback and no password anywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.manager.test_repo_add_refusals import crashed_mid_clone
from tests.support.git import dumb_http, git
from tests.support.processes import RunningManager
from tests.web.test_console import json_twin, row

PASSWORD = "s3cret-pw-4711"


def add(page: Any, source: str, name: str = "") -> None:
    page.fill("input[name=source]", source)
    page.fill("input[name=name]", name)
    page.click("text=Add repo")


def refusal(page: Any) -> str:
    return str(page.text_content("[role=alert]")).strip()


def health_text(page: Any, manager: RunningManager) -> str:
    page.goto(manager.url + "/health")
    text = str(page.text_content("body"))
    page.goto(manager.url + "/repos")
    return text


def test_a_file_or_a_folder_without_a_repo_is_refused_on_the_page(
    console: tuple[RunningManager, Any], tmp_path: Path
) -> None:
    manager, page = console
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")
    add(page, str(source))
    assert refusal(page) == (
        f"Cannot add the repo: {source} is a file, not a git repository; give a repo's folder"
        " or a git URL."
    )
    folder = tmp_path / "plain"
    folder.mkdir()
    add(page, str(folder))
    assert refusal(page) == (
        f"Cannot add the repo: {folder} is not a git repository (no .git); give a repo's"
        " folder or a git URL."
    )
    assert json_twin(page, "/repos?format=json")["repos"] == []
    assert not (manager.data_dir / "repos" / "plain").exists()
    for shown in (manager.log(), health_text(page, manager)):
        assert "Traceback" not in shown and "internal_error" not in shown


def test_names_are_refused_in_words_for_the_page(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    source = git_repo("app")
    add(page, str(source), name="2")
    assert refusal(page) == (
        "Cannot add the repo: repo name '2' is all digits, which reads as a repo id; add a letter."
    )
    add(page, str(source))
    row(page, "app").locator(".state-ready").wait_for()
    add(page, str(source))
    assert refusal(page) == (
        "Cannot add the repo: a repo named 'app' already exists; pick another name."
    )
    assert [r["name"] for r in json_twin(page, "/repos?format=json")["repos"]] == ["app"]


def test_a_password_in_a_clone_url_is_shown_and_logged_nowhere(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    with dumb_http(git_repo("widget")) as url:
        add(page, url.replace("http://", f"http://alice:{PASSWORD}@"))
        row(page, "widget").locator(".state-ready").wait_for()
    failing = f"http://alice:{PASSWORD}@127.0.0.1:1/gone.git"
    add(page, failing)
    row(page, "gone").locator(".state-error").wait_for()
    add(page, failing, name="9")  # refused: the form comes back filled in
    assert "all digits" in refusal(page)
    assert page.input_value("input[name=source]") == "http://127.0.0.1:1/gone.git"
    add(page, f"http://127.0.0.1:1/gone2.git?access_token={PASSWORD}")
    row(page, "gone2").locator(".state-error").wait_for()

    repos = json_twin(page, "/repos?format=json")["repos"]
    assert [(r["name"], r["originUrl"]) for r in repos] == [
        ("widget", url),
        ("gone", "http://127.0.0.1:1/gone.git"),
        ("gone2", "http://127.0.0.1:1/gone2.git"),
    ]
    directory = Path(repos[0]["directory"])
    assert git(directory, "remote", "get-url", "origin") == url
    assert PASSWORD not in (directory / ".git" / "config").read_text()
    assert "console: cloned" in manager.log() and "clone of" in manager.log()
    for shown in (str(page.content()), str(repos), manager.log(), health_text(page, manager)):
        assert PASSWORD not in shown


def test_remove_after_a_crash_mid_clone_deletes_the_partial_clone(
    manager_factory: Callable[..., RunningManager],
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    tmp_path: Path,
) -> None:
    manager, data_dir, source = crashed_mid_clone(manager_factory, tmp_path, "big3")
    page = new_page()
    sign_in(page, manager)
    big = row(page, "big3")
    assert "clone interrupted; remove the repo and add it again" in big.inner_text()
    big.locator("a.danger-link").click()
    assert "the partial clone in" in str(page.text_content("main"))
    assert page.locator("input[name=delete_files]").count() == 0
    page.click("button.danger")
    page.wait_for_url(manager.url + "/repos")
    assert not (data_dir / "repos" / "big3").exists()
    add(page, str(source), name="big3")
    row(page, "big3").locator(".state-ready").wait_for()
