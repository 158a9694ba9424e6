"""The console's pages in a real browser: repos, settings and health, live."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from manager.web.repo_status import SUBJECT_CHARS
from tests.support.auth import bearer
from tests.support.git import git, undeletable_file, write_files
from tests.support.processes import RunningManager, ocm_command
from tests.support.proctree import alive, children, cmdline, kill_group_quietly, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def json_twin(page: Any, path: str) -> Any:
    """The JSON twin of a page, fetched by the signed-in browser itself."""
    answer = page.request.get(_origin(page) + path)
    assert answer.ok, answer.text()
    return answer.json()


def _origin(page: Any) -> str:
    return "/".join(page.url.split("/", 3)[:3])


def row(page: Any, name: str) -> Any:
    return page.locator("tr", has=page.locator("strong", has_text=name))


def test_add_a_repo_from_a_path_see_it_ready_then_remove_it(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    source = git_repo("app", files={"README.md": "# app\n", "src/main.py": "print(1)\n"})
    head = git(source, "rev-parse", "--short", "HEAD")
    assert page.is_visible("text=No repos yet")

    page.fill("input[name=source]", str(source))
    page.click("text=Add repo")
    app = row(page, "app")
    app.locator(".state-ready").wait_for()
    assert app.locator("[data-label=Branch]").inner_text() == "main"
    assert head in app.locator("[data-label=Head]").inner_text()
    assert app.locator("[data-label=Uncommitted]").inner_text() == "none"
    assert app.locator("[data-label='TUIs attached']").inner_text() == "0"
    assert app.locator("[data-label='OpenCode sessions']").inner_text() == "—"  # no OpenCode

    listed = json_twin(page, "/repos?format=json")["repos"]
    assert [(r["name"], r["status"], r["head"]["commit"]) for r in listed] == [
        ("app", "ready", head)
    ]
    directory = Path(listed[0]["directory"])
    assert (directory / "src" / "main.py").read_text() == "print(1)\n"
    # The API sees it as a workspace now.
    workspaces = requests.get(
        manager.url + "/api/internal/opencode-workspaces", headers=bearer(manager.token), timeout=10
    ).json()["workspaces"]
    assert [w["name"] for w in workspaces] == ["app"]

    # A change on the Manager's copy shows up without a reload.
    write_files(directory, {"notes.txt": "draft\n", "README.md": "# changed\n"})
    app.locator("[data-label=Uncommitted]", has_text="2 files").wait_for()

    app.get_by_role("link", name="Remove app…").click()
    assert page.text_content("h1") == "Remove app?"
    page.click("button.danger")
    page.wait_for_url(manager.url + "/repos")
    assert page.is_visible("text=No repos yet")
    assert directory.is_dir(), "files are kept unless asked"


def test_remove_can_delete_the_files(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    source = git_repo("gone")
    page.fill("input[name=source]", source.as_uri())  # a git URL this time
    page.click("text=Add repo")
    row(page, "gone").locator(".state-ready").wait_for()
    directory = manager.data_dir / "repos" / "gone"
    assert directory.is_dir()
    row(page, "gone").get_by_role("link", name="Remove gone…").click()
    page.check("input[name=delete_files]")
    page.click("button.danger")
    page.wait_for_url(manager.url + "/repos")
    assert not directory.exists()
    assert json_twin(page, "/repos?format=json")["repos"] == []


def test_remove_says_which_files_it_could_not_delete(
    manager_factory: Callable[..., RunningManager],
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    git_repo: Callable[..., Path],
) -> None:
    manager = manager_factory("--no-opencode", bound=True)  # as the service's own account
    page = new_page()
    sign_in(page, manager)
    page.fill("input[name=source]", str(git_repo("stuck")))
    page.click("text=Add repo")
    row(page, "stuck").locator(".state-ready").wait_for()
    directory = manager.data_dir / "repos" / "stuck"
    with undeletable_file(directory) as locked:
        row(page, "stuck").get_by_role("link", name="Remove stuck…").click()
        page.check("input[name=delete_files]")
        page.click("button.danger")
        # On the Repos page the removal redirects to: a reload does not post it again.
        page.wait_for_url(manager.url + "/repos?removed=1")
        said = page.get_by_role("alert")
        assert said.inner_text() == (
            "Removed stuck, but could not delete all of its files (pgdata/PG_VERSION:"
            f" Permission denied); delete {directory} as a user allowed to (its owner, or"
            " root) before a repo named stuck is added again."
        )
        assert page.is_visible("text=No repos yet")
        assert locked.exists()
        page.reload()  # it said "There is no repo 1", the removal posted once more
        assert page.is_visible("text=No repos yet")
        assert page.get_by_role("alert").count() == 0
    assert json_twin(page, "/repos?format=json")["repos"] == []

    page.fill("input[name=source]", str(git_repo("twin")))  # and the page's JSON twin
    page.click("text=Add repo")
    row(page, "twin").locator(".state-ready").wait_for()
    [repo] = json_twin(page, "/repos?format=json")["repos"]
    directory = manager.data_dir / "repos" / "twin"
    with undeletable_file(directory):
        answer = page.request.post(
            f"{manager.url}/repos/{repo['id']}/remove?format=json",
            form={"confirm": "yes", "delete_files": "yes"},
            headers={"Origin": manager.url},
        )
        assert answer.ok, answer.text()
        assert answer.json() == {
            "id": repo["id"],
            "removed": True,
            "filesDeleted": False,
            "filesLeft": "could not delete all of its files (pgdata/PG_VERSION: Permission"
            f" denied); delete {directory} as a user allowed to (its owner, or root) before"
            " a repo named twin is added again",
        }


def test_a_clone_that_fails_shows_gits_error_and_a_bad_name_is_refused(
    console: tuple[RunningManager, Any], tmp_path: Path
) -> None:
    manager, page = console
    missing = tmp_path / "not-a-repo"  # git is left to fail on it, in the background
    page.fill("input[name=source]", str(missing))
    page.click("text=Add repo")
    failed = row(page, "not-a-repo")
    failed.locator(".state-error").wait_for()
    assert "git clone failed" in failed.locator("[data-label=Status]").inner_text()
    assert not (manager.data_dir / "repos" / "not-a-repo").exists()

    page.fill("input[name=source]", str(missing))
    page.fill("input[name=name]", "../escape")
    page.click("text=Add repo")
    assert "invalid repo name" in page.text_content("[role=alert]")
    assert page.input_value("input[name=source]") == str(missing)  # nothing typed is lost


def test_a_clone_from_a_server_that_never_answers_can_be_stopped_from_the_page(
    console: tuple[RunningManager, Any],
) -> None:
    manager, page = console
    # A git server that takes the connection and says nothing: git waits for ever.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        page.fill("input[name=source]", f"http://127.0.0.1:{port}/silent.git")
        page.click("text=Add repo")
        silent.settimeout(30)
        held, _ = silent.accept()  # git is at the door
        stuck = row(page, "silent")
        assert stuck.locator(".state-cloning").count() == 1
        stuck.get_by_role("link", name="Remove silent…").click()
        page.get_by_role("button", name="Stop the clone and remove silent").click()
        assert page.url == manager.url + "/repos"
        assert row(page, "silent").count() == 0
        held.settimeout(10)
        assert held.recv(65536) is not None  # git's request, or the end of it
        while held.recv(65536):  # git is gone: its end of the connection closes
            pass
        held.close()
    finally:
        silent.close()
    assert json_twin(page, "/repos?format=json")["repos"] == []
    assert not (manager.data_dir / "repos" / "silent").exists()
    # The name is free again: adding it anew is not refused as taken.
    page.fill("input[name=source]", f"http://127.0.0.1:{port}/silent.git")
    page.click("text=Add repo")
    row(page, "silent").locator(".state-error").wait_for()


def test_a_manager_killed_mid_clone_leaves_no_git_at_work(
    console: tuple[RunningManager, Any],
) -> None:
    # Killed, the Manager left git waiting on a quiet server, alive in repos/quiet past the
    # restart that calls the clone interrupted and the removal and new add that follow.
    manager, page = console
    silent = socket.create_server(("127.0.0.1", 0))
    clone = 0
    try:
        page.fill("input[name=source]", f"http://127.0.0.1:{silent.getsockname()[1]}/quiet.git")
        page.click("text=Add repo")
        silent.settimeout(30)
        held, _ = silent.accept()  # git is at the door
        (clone,) = [
            pid for pid in children(manager.process.pid) if cmdline(pid)[:2] == ["git", "clone"]
        ]
        manager.stop(signal.SIGKILL)
        assert wait_until(lambda: not alive(clone)), "git clone outlived its Manager"
        assert not (manager.data_dir / "repos" / "quiet").exists()
        held.close()
    finally:
        silent.close()
        if clone:
            kill_group_quietly(clone)  # git leads its group; its helper may still wait


def test_a_manager_that_stops_answering_is_said_on_the_open_page(
    console: tuple[RunningManager, Any],
) -> None:
    # The list froze as it was: a clone the Manager was running showed 'cloning' for as long
    # as the Manager was away, killed or restarting, with nothing saying so.
    manager, page = console
    manager.stop(signal.SIGKILL)
    page.locator("#unreachable").wait_for()
    assert "The Manager is not answering" in page.inner_text("#unreachable")


def run_ocm(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        ocm_command(*args), input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def test_rotate_the_token_from_the_page_then_ocm_login_with_what_it_showed(
    console: tuple[RunningManager, Any],
) -> None:
    manager, page = console
    page.click("nav >> text=Settings")
    page.click("button.danger")  # the confirmation box is required: nothing happens
    assert page.url == manager.url + "/settings"
    page.check("input[name=confirm]")
    page.click("button.danger")
    assert page.text_content("h1") == "New Manager token"
    token = page.input_value("#new-token")
    login_line = page.input_value("#login-line")
    assert login_line == f"ocm login {manager.url}"
    assert token.startswith("ocm_") and token != manager.token
    page.locator("button[data-copy='#new-token']").wait_for(state="visible")  # shown by script

    # The old token is dead at once, on the API too; this browser stays signed in.
    old = requests.get(
        manager.url + "/api/internal/opencode-workspaces", headers=bearer(manager.token), timeout=10
    )
    assert old.status_code == 401
    page.click("nav >> text=Health")
    assert page.text_content("h1") == "Health"

    # The exact line the page showed, with the token it showed on stdin.
    login = run_ocm(*login_line.split()[1:], stdin=token + "\n")
    assert login.returncode == 0, login.stderr
    assert f"logged in to {manager.url}" in login.stderr
    listed = run_ocm("list", "--json", stdin="")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    # Shown once: the settings page never shows it again.
    page.goto(manager.url + "/settings")
    assert token not in page.content()
    assert token not in manager.log()


def test_the_rotate_form_sent_again_does_not_rotate_again(
    console: tuple[RunningManager, Any],
) -> None:
    """A reload of the new token's page sends the form again: the token just shown (and
    perhaps copied) must stay the current one."""
    manager, page = console
    page.goto(manager.url + "/settings")
    form = page.input_value("input[name=rotates]")
    page.check("input[name=confirm]")
    page.click("button.danger")
    token = page.input_value("#new-token")
    with page.expect_response(manager.url + "/settings/token") as answer:
        page.evaluate(
            """(rotates) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/settings/token";
                for (const [name, value] of [["confirm", "yes"], ["rotates", rotates]]) {
                    const field = document.createElement("input");
                    field.name = name;
                    field.value = value;
                    form.appendChild(field);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            form,
        )
    assert answer.value.status == 409
    assert "sent before" in answer.value.text()
    api = requests.get(
        manager.url + "/api/internal/opencode-workspaces", headers=bearer(token), timeout=10
    )
    assert api.status_code == 200
    assert manager.log().count("Manager token rotated") == 1


def test_health_shows_versions_disk_and_the_logs(console: tuple[RunningManager, Any]) -> None:
    manager, page = console
    page.click("nav >> text=Health")
    facts = page.inner_text("dl.facts")
    assert "disabled" in facts  # --no-opencode
    from ocm import __version__

    assert __version__ in facts
    assert " of " in page.inner_text("dl.facts dd:has(small)")
    assert "console sign-in from 127.0.0.1" in page.inner_text("pre.log")
    data = json_twin(page, "/health?format=json")
    assert data["managerVersion"] == __version__
    assert data["opencode"]["state"] == "disabled"
    assert data["diskFreeBytes"] > 0
    assert any("console sign-in" in line for line in data["logs"]["manager.log"])


def laptop_round_trip(manager: RunningManager, source: Path, laptop: Path) -> Path:
    """A laptop clones ``source`` (so its origin matches the Manager's copy), runs
    `ocm pull`, commits a change and runs `ocm push`: the console's "last pull" and "last push".
    Returns the checkout."""
    git(laptop.parent, "clone", "-q", str(source), laptop.name)
    # The Manager recorded the source's own origin when it has one: the laptop's must match.
    origin = subprocess.run(
        ["git", "-C", str(source), "remote", "get-url", "origin"], capture_output=True, text=True
    )
    if origin.returncode == 0:
        git(laptop, "remote", "set-url", "origin", origin.stdout.strip())
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "OPENCODE_MANAGER_URL": manager.url,
        "OCM_TOKEN": manager.token,
    }
    for args in (("pull",), ("push",)):
        if args == ("push",):
            write_files(laptop, {"from-the-laptop.txt": "hello\n"})
            git(laptop, "add", "-A")
            git(laptop, "commit", "-q", "-m", "from the laptop")
        done = subprocess.run(
            ocm_command(*args),
            cwd=laptop,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    return laptop


def test_last_push_and_pull_show_when_and_from_where(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    manager, page = console
    source = git_repo("shared")
    page.fill("input[name=source]", str(source))
    page.click("text=Add repo")
    shared = row(page, "shared")
    shared.locator(".state-ready").wait_for()
    assert shared.locator("[data-label='Last pull']").inner_text() == "—"

    (tmp_path / "laptop").mkdir()
    laptop = laptop_round_trip(manager, source, tmp_path / "laptop" / "shared")
    label = f"{os.uname().nodename}:{laptop}"
    shared.locator("[data-label='Last pull']", has_text=label).wait_for()
    shared.locator("[data-label='Last push']", has_text=label).wait_for()
    assert "(127.0.0.1)" in shared.locator("[data-label='Last pull']").inner_text()
    last_push = json_twin(page, "/repos?format=json")["repos"][0]["lastPush"]
    assert last_push["from"] == f"{label} (127.0.0.1)"
    assert last_push["at"].endswith("Z")


def test_a_live_update_keeps_the_keyboard_focus_on_its_control(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    manager, page = console
    manager.cli("repo", "add", str(git_repo("app")), "--name", "app")
    page.reload()
    remove = row(page, "app").locator("a.danger-link")
    remove.focus()
    href = remove.get_attribute("href")

    # Another repo arrives (from the command line): the list is redrawn under the focus.
    manager.cli("repo", "add", str(git_repo("lib")), "--name", "lib")
    row(page, "lib").wait_for()

    assert page.evaluate("document.activeElement.getAttribute('href')") == href
    page.keyboard.press("Enter")
    page.wait_for_url(manager.url + href)


def test_a_commit_subject_of_megabytes_is_shown_cut_short(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    # Whole, a subject that an upstream made huge travelled in the page and in its JSON twin,
    # which every open Repos tab asks for every 2 s.
    manager, page = console
    source = git_repo("spam")
    message = tmp_path / "message"
    message.write_text("<b>spam</b> " * 100_000 + "\n")
    git(source, "commit", "-q", "--allow-empty", "-F", str(message))
    manager.cli("repo", "add", str(source), "--name", "spam")

    subject = row(page, "spam").locator("[data-label=Head] small")
    shown = subject.inner_text()  # waits for the live list to show the repo
    assert shown.startswith("<b>spam</b> <b>spam</b>") and shown.endswith("…"), shown[:100]
    assert len(shown) <= SUBJECT_CHARS
    listed = json_twin(page, "/repos?format=json")["repos"]
    assert listed[0]["head"]["subject"] == shown


def test_direction_controls_from_a_remote_are_shown_as_code_points(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    # A right-to-left override in a branch name or a subject showed the text after it
    # reversed ("main" + U+202E + "txt.exe" read "mainexe.txt"), and could reorder the
    # Manager's own words after it in a cell.
    manager, page = console
    source = git_repo("bidi")
    git(source, "switch", "-q", "-c", "main\u202etxt.exe")
    git(source, "commit", "-q", "--allow-empty", "-m", "fix \u2067evil\u2069 and \u202aok\u202c")
    manager.cli("repo", "add", str(source), "--name", "bidi")

    branch = row(page, "bidi").locator("[data-label=Branch]").inner_text()
    assert branch == "main[U+202E]txt.exe"
    subject = row(page, "bidi").locator("[data-label=Head] small").inner_text()
    assert subject == "fix [U+2067]evil[U+2069] and [U+202A]ok[U+202C]"
    listed = json_twin(page, "/repos?format=json")["repos"]  # data stays as git has it
    assert listed[0]["branch"] == "main\u202etxt.exe"


def test_remove_waits_for_a_push_or_pull_of_the_repo(
    console: tuple[RunningManager, Any], git_repo: Callable[..., Path]
) -> None:
    from ocm.mirror.receive import repo_lock

    manager, page = console
    manager.cli("repo", "add", str(git_repo("busy")))
    directory = manager.data_dir / "repos" / "busy"
    page.reload()
    row(page, "busy").get_by_role("link", name="Remove busy…").click()
    page.check("input[name=delete_files]")
    with repo_lock(directory):  # as a push switching its tree, or a pull streaming it
        page.click("button.danger")
        assert "A push or pull of busy is in progress" in page.text_content("body")
    assert (directory / ".git").is_dir()
    assert [r["name"] for r in json_twin(page, "/repos?format=json")["repos"]] == ["busy"]
