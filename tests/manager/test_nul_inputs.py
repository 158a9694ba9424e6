"""A NUL character in a request's query or console form, against the real Manager.

No git argument can hold one: ``subprocess`` raised ``ValueError`` before git ran, which
answered 500, and a ``push --create`` whose branch or origin held one left the new repo's
folder behind, blocking the name. Each is a 400 now, and nothing is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.auth import bearer
from tests.support.git import make_repo
from tests.support.processes import RunningManager
from tests.web.conftest import COOKIE_NAME

MIRROR = "/api/internal/repo-mirror"
WIRE = {"v": "2"}
CREATE = {**WIRE, "create": "1", "name": "proj", "branch": "main", "originUrl": ""}


def _refused(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "NUL" in response.json()["message"]


def _nothing_made(manager: RunningManager) -> None:
    repos_dir = manager.data_dir / "repos"
    assert not repos_dir.exists() or list(repos_dir.iterdir()) == []
    assert manager.cli("repo", "list", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize(
    "field",
    [{"name": "x\0"}, {"branch": "ma\0in"}, {"originUrl": "https://h/\0x"}, {"from": "a\0b"}],
)
def test_push_create_with_a_nul_in_its_query_makes_nothing(
    manager: RunningManager, field: dict[str, str]
) -> None:
    response = requests.post(
        f"{manager.url}{MIRROR}/0/up",
        params={**CREATE, **field},
        data=b"",
        headers=bearer(manager.token),
        timeout=30,
    )
    _refused(response)
    _nothing_made(manager)
    # The name is free: a clean create of it gets as far as the (empty) pack.
    clean = requests.post(
        f"{manager.url}{MIRROR}/0/up",
        params=CREATE,
        data=b"",
        headers=bearer(manager.token),
        timeout=30,
    )
    assert clean.json()["error"] != "repo_exists", clean.text


@pytest.mark.parametrize(
    ("route", "query"),
    [("head", {"branch": "ma\0in"}), ("head", {"ours": "\0"}), ("down", {"have": "\0"})],
)
def test_a_look_or_pull_with_a_nul_in_its_query_is_400(
    manager: RunningManager, tmp_path: Path, route: str, query: dict[str, str]
) -> None:
    manager.cli("repo", "add", str(make_repo(tmp_path / "src")), "--name", "src")
    response = requests.get(
        f"{manager.url}{MIRROR}/1/{route}",
        params={**WIRE, **query},
        headers=bearer(manager.token),
        timeout=30,
    )
    _refused(response)


def test_the_console_refuses_a_form_with_a_nul_and_adds_nothing(manager: RunningManager) -> None:
    origin = {"Origin": manager.url}
    signed_in = requests.post(
        manager.url + "/signin",
        data={"token": manager.token},
        headers=origin,
        allow_redirects=False,
        timeout=10,
    )
    jar = {COOKIE_NAME: str(signed_in.cookies[COOKIE_NAME])}
    added = requests.post(
        manager.url + "/repos",
        data={"source": "https://example.invalid/a\0b.git", "name": "", "branch": ""},
        headers={**origin, "Accept": "application/json"},
        cookies=jar,
        timeout=10,
    )
    _refused(added)
    page = requests.post(
        manager.url + "/repos",
        data={"source": "/srv/x", "name": "n\0", "branch": ""},
        headers=origin,
        cookies=jar,
        timeout=10,
    )
    assert page.status_code == 400 and "NUL character" in page.text, page.text
    _nothing_made(manager)
