"""The console beside the real OpenCode: sessions per repo, attached TUIs and health, live."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.auth import bearer
from tests.support.processes import RunningManager
from tests.support.sse import EventStream
from tests.web.test_console import row
from tests.web.test_console_rows import rows, signed_in

pytestmark = pytest.mark.slow


def test_sessions_and_attached_tuis_appear_without_a_reload(
    live: RunningManager,
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    git_repo: Callable[..., Path],
) -> None:
    page = new_page()
    sign_in(page, live)
    page.fill("input[name=source]", str(git_repo("project")))
    page.click("text=Add repo")
    project = row(page, "project")
    project.locator(".state-ready").wait_for(timeout=30_000)
    sessions = project.locator("[data-label='OpenCode sessions']")
    sessions.locator("text=/^0/").wait_for()
    directory = str(live.data_dir / "repos" / "project")
    proxy = live.url + "/api/opencode-proxy"

    # A TUI attaches: its event stream through the proxy.
    stream = EventStream(
        live.url,
        f"/api/opencode-proxy/global/event?directory={directory}",
        bearer(live.token),
    )
    try:
        assert stream.status() == 200
        project.locator("[data-label='TUIs attached']", has_text="1").wait_for()
        # It starts a session, as `ocm` does.
        created = requests.post(
            f"{proxy}/session",
            params={"directory": directory},
            json={},
            headers=bearer(live.token),
            timeout=30,
        )
        assert created.status_code == 200, created.text
        sessions.locator("text=/^1/").wait_for()
    finally:
        stream.close()
    project.locator("[data-label='TUIs attached']", has_text="0").wait_for()
    assert page.url == live.url + "/repos"  # all of it without leaving the page

    # One click away: the repo's sessions in OpenCode's web app, on its own port.
    app_link = project.locator("a.open-app").get_attribute("href") or ""
    assert app_link.startswith("http://127.0.0.1:") and not app_link.startswith(live.url), app_link
    assert app_link.endswith("/session")


def test_health_shows_opencode_running_with_its_version(
    live: RunningManager, new_page: Callable[..., Any], sign_in: Callable[..., Any]
) -> None:
    page = new_page()
    sign_in(page, live)
    page.goto(live.url + "/health")
    data = page.request.get(live.url + "/health?format=json").json()
    assert data["opencode"]["state"] == "running"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", data["opencode"]["version"] or ""), data
    assert data["opencode"]["restarts"] == 0
    assert data["opencode"]["uptimeSeconds"] >= 0
    facts = page.inner_text("dl.facts")
    assert "running" in facts and data["opencode"]["version"] in facts
    assert page.locator("h2", has_text="opencode.log").is_visible()


def test_session_counts_are_what_opencode_lists_for_each_folder(
    live: RunningManager, git_repo: Callable[..., Path]
) -> None:
    # One list of every session serves all rows (manager.ask_opencode.session_counts): each
    # repo's count must still be what OpenCode lists for that folder, however many.
    for name in ("many", "none"):
        live.cli("repo", "add", str(git_repo(name, files={"src/app.py": "pass\n"})))
    many = live.data_dir / "repos" / "many"
    proxy, token = live.url + "/api/opencode-proxy", bearer(live.token)

    def session(directory: Path, **body: Any) -> str:
        made = requests.post(
            f"{proxy}/session",
            params={"directory": str(directory)},
            json=body,
            headers=token,
            timeout=30,
        )
        assert made.status_code == 200, made.text
        return str(made.json()["id"])

    first = session(many)
    for _ in range(100):  # OpenCode lists 100 unless asked for more
        session(many)
    session(many, parentID=first)  # a subagent's
    archived = requests.patch(
        f"{proxy}/session/{first}",
        params={"directory": str(many)},
        json={"time": {"archived": 1}},
        headers=token,
        timeout=30,
    )
    assert archived.status_code == 200, archived.text
    session(many / "src")  # a subfolder's is not the repo's

    listed = {row["name"]: row["opencodeSessions"] for row in rows(live, signed_in(live))}
    own = {
        name: len(
            requests.get(
                f"{proxy}/session",
                params={"directory": str(live.data_dir / "repos" / name), "limit": "1000"},
                headers=token,
                timeout=30,
            ).json()
        )
        for name in ("many", "none")
    }
    assert listed == own == {"many": 102, "none": 0}
