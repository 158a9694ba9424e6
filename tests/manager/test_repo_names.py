"""Repo names and ids from a hostile client, against the real Manager."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.git import make_repo
from tests.support.processes import RunningManager

MIRROR = "/api/internal/repo-mirror"
WIRE = {"v": "2"}  # the mirror's wire format, so the request is judged on its name or id


def _auth(manager: RunningManager) -> dict[str, str]:
    return {"Authorization": f"Bearer {manager.token}"}


@pytest.mark.parametrize("name", ["x\n", "x\r\n", "\nx", "-x", ".x", "..", "x" * 101, "2", "0042"])
def test_push_create_refuses_a_name_that_is_not_wholly_allowed(
    manager: RunningManager, name: str
) -> None:
    response = requests.post(
        f"{manager.url}{MIRROR}/0/up",
        params={**WIRE, "create": "1", "name": name, "branch": "main", "originUrl": ""},
        data=b"",
        headers=_auth(manager),
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_name"
    repos_dir = manager.data_dir / "repos"
    assert not repos_dir.exists() or list(repos_dir.iterdir()) == []
    listed = requests.get(
        f"{manager.url}/api/internal/opencode-workspaces", headers=_auth(manager), timeout=30
    )
    assert listed.json()["workspaces"] == []
    assert manager.cli("repo", "list", "--json").stdout.strip() == "[]"


def test_repo_add_refuses_a_name_ending_in_a_newline(
    manager: RunningManager, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "source")
    done = manager.cli("repo", "add", str(source), "--name", "x\n", check=False)
    assert done.returncode != 0
    assert "invalid repo name" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (manager.data_dir / "repos" / "x\n").exists()


@pytest.mark.parametrize(
    "repo_id", [2**63 - 1, 2**63, 2**64, 10**40], ids=["max", "2^63", "2^64", "1e40"]
)
@pytest.mark.parametrize("route", ["head", "down"])
def test_a_repo_id_sqlite_cannot_hold_is_404(
    manager: RunningManager, repo_id: int, route: str
) -> None:
    response = requests.get(
        f"{manager.url}{MIRROR}/{repo_id}/{route}", params=WIRE, headers=_auth(manager), timeout=30
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "unknown_repo"
    assert "Traceback" not in manager.log()


def test_a_huge_repo_id_on_push_is_404(manager: RunningManager) -> None:
    response = requests.post(
        f"{manager.url}{MIRROR}/{2**63}/up",
        params=WIRE,
        data=b"",
        headers=_auth(manager),
        timeout=30,
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "unknown_repo"


def test_repo_remove_with_a_huge_id_is_a_clear_error(manager: RunningManager) -> None:
    done = manager.cli("repo", "remove", str(2**64), check=False)
    assert done.returncode != 0
    assert f"no repo '{2**64}'" in done.stderr
    assert "Traceback" not in done.stderr
