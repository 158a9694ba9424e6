"""A relative ``--data-dir`` names a folder once, where the command was typed: the repos it
registers must be found from anywhere (a Manager started in another folder, OpenCode, which
runs in the data dir). Real ``ocm-manager`` processes and git repos in tmp_path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import requests

from manager.registry import READY, Registry
from manager.tokens import new_token
from tests.support.auth import bearer
from tests.support.git import make_repo
from tests.support.processes import manager_command


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manager_command(*args), cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    )


def test_a_repo_added_with_a_relative_data_dir_is_found_from_another_folder(tmp_path):
    source = make_repo(tmp_path / "relrepo")
    typed_in = tmp_path / "here"
    typed_in.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    _cli(typed_in, "repo", "add", str(source), "--data-dir", "data")
    listed = json.loads(
        _cli(elsewhere, "repo", "list", "--json", "--data-dir", str(typed_in / "data")).stdout
    )

    assert [(r["name"], r["directory"]) for r in listed] == [
        ("relrepo", str(typed_in / "data" / "repos" / "relrepo"))
    ]
    assert (Path(listed[0]["directory"]) / ".git").is_dir()


def test_repos_registered_relative_before_are_anchored_in_the_data_dir(manager_factory, tmp_path):
    """A data dir made by a Manager that kept the relative path: each such repo's folder is
    ``repos/<name>`` of the data dir, wherever the Manager now starts."""
    data_dir = tmp_path / "here" / "data"
    folder = make_repo(data_dir / "repos" / "relrepo")
    registry = Registry(data_dir / "manager.db")
    registry.add_repo(
        name="relrepo", directory=Path("data/repos/relrepo"), origin_url=str(folder), status=READY
    )

    # The token made here, not by `token rotate`: that command would anchor the row first.
    manager = manager_factory("--no-opencode", data_dir=data_dir, token=new_token(registry))
    workspaces = requests.get(
        manager.url + "/api/internal/opencode-workspaces", headers=bearer(manager.token), timeout=10
    ).json()["workspaces"]

    assert [(w["name"], w["directory"]) for w in workspaces] == [("relrepo", str(folder))]
    assert workspaces[0]["rootCommits"], "git reads the anchored folder"
    assert f"repo relrepo was registered at data/repos/relrepo; now {folder}" in manager.log()
    # Anchored in the registry itself: the repo commands see the same folder.
    listed = json.loads(manager.cli("repo", "list", "--json").stdout)
    assert listed[0]["directory"] == str(folder)
