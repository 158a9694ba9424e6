"""A hostile client's query values (and console forms), against the real Manager.

A NUL character: no git argument can hold one, and ``subprocess`` raised ``ValueError``
before git ran, which answered 500; a ``push --create`` whose branch or origin held one
left the new repo's folder behind, blocking the name. A 200,000-character origin URL kept
the Manager busy for minutes, answering no one. Each is a 400 now, and nothing is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.auth import bearer
from tests.support.git import make_repo
from tests.support.processes import RunningManager
from tests.web.conftest import cookie_name

MIRROR = "/api/internal/repo-mirror"
WIRE = {"v": "2"}
CREATE = {**WIRE, "create": "1", "name": "proj", "branch": "main", "originUrl": ""}


def _create(manager: RunningManager, **fields: str) -> requests.Response:
    """A ``push --create`` of an empty body, with ``fields`` over the usual query."""
    return requests.post(
        f"{manager.url}{MIRROR}/0/up",
        params={**CREATE, **fields},
        data=b"",
        headers=bearer(manager.token),
        timeout=30,
    )


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
    response = _create(manager, **field)
    _refused(response)
    _nothing_made(manager)
    # The name is free: a clean create of it gets as far as the (empty) pack.
    clean = _create(manager)
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


@pytest.mark.parametrize(
    "field",
    [{"source": "https://example.invalid/a\0b.git"}, {"branch": "ma\0in"}, {"name": "n\0"}],
)
def test_the_console_add_form_refuses_a_nul_and_adds_nothing(
    manager: RunningManager, tmp_path: Path, field: dict[str, str]
) -> None:
    # The form is the console's own to check (any control character, manager.repos).
    origin = {"Origin": manager.url}
    signed_in = requests.post(
        manager.url + "/signin",
        data={"token": manager.token},
        headers=origin,
        allow_redirects=False,
        timeout=10,
    )
    source = str(make_repo(tmp_path / "src"))
    added = requests.post(
        manager.url + "/repos",
        data={"source": source, "name": "", "branch": "", **field},
        headers={**origin, "Accept": "application/json"},
        cookies={cookie_name(manager): str(signed_in.cookies[cookie_name(manager)])},
        timeout=10,
    )
    assert (added.status_code, added.json()["error"]) == (400, "bad_repo"), added.text
    _nothing_made(manager)


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ({"branch": "a..b"}, "bad_branch"),
        ({"branch": "-b"}, "bad_branch"),
        ({"originUrl": "-x"}, "bad_pack"),
    ],
)
def test_push_create_with_a_bad_branch_or_an_option_for_origin_makes_nothing(
    manager: RunningManager, field: dict[str, str], code: str
) -> None:
    # They were 500 "could not create the repo directory" (git init's or git remote's
    # refusal); an origin of "-x" reached git remote as an option. It is a URL now (which
    # the empty pack here never gets to use).
    response = _create(manager, **field)
    assert (response.status_code, response.json()["error"]) == (400, code), response.text
    _nothing_made(manager)


def test_a_huge_origin_url_is_refused_and_the_manager_keeps_answering(
    manager: RunningManager,
) -> None:
    # Taking the credentials out of it tried a regular expression at each of its letters,
    # each try scanning to its end: minutes of CPU under the lock every request needs.
    response = _create(manager, originUrl="https://" + "x" * 200_000)
    assert (response.status_code, response.json()["error"]) == (400, "bad_origin")
    assert requests.get(f"{manager.url}/api/health", timeout=30).status_code == 200
    _nothing_made(manager)
