"""`ocm-manager repo add/remove` when the source, the name or the clone goes wrong: one
line each, and nothing half-made left registered or on disk. Against a real Manager."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.git import make_repo
from tests.support.processes import Cli, RunningManager

PASSWORD = "s3cret-pw-4711"


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("ocm-manager: ") and "; " in line, line
    return line


def listed(manager: RunningManager) -> list[dict]:
    return json.loads(manager.cli("repo", "list", "--json").stdout)  # type: ignore[no-any-return]


def nothing_added(manager: RunningManager) -> None:
    assert listed(manager) == []
    repos = manager.data_dir / "repos"
    assert not repos.exists() or list(repos.iterdir()) == []


def test_a_file_is_not_a_repo(manager: RunningManager, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")
    line = one_line(manager.cli("repo", "add", str(source), check=False))
    assert line == (
        f"ocm-manager: {source} is a file, not a git repository; give a repo's folder or a git URL"
    )
    nothing_added(manager)


def test_a_folder_without_a_repo_is_not_a_repo(manager: RunningManager, tmp_path: Path) -> None:
    source = tmp_path / "notrepo"
    source.mkdir()
    line = one_line(manager.cli("repo", "add", str(source), check=False))
    assert line == (
        f"ocm-manager: {source} is not a git repository (no .git); give a repo's folder or a"
        " git URL"
    )
    nothing_added(manager)


def test_a_bare_repo_is_a_repo(manager: RunningManager, tmp_path: Path) -> None:
    bare = tmp_path / "shared.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(make_repo(tmp_path / "w")), str(bare)])
    manager.cli("repo", "add", str(bare))
    assert [repo["name"] for repo in listed(manager)] == ["shared"]


@pytest.mark.parametrize("name", ["2", "0", "007"])
def test_an_all_digit_name_is_refused(manager: RunningManager, tmp_path: Path, name: str) -> None:
    source = make_repo(tmp_path / "alpha")
    line = one_line(manager.cli("repo", "add", str(source), "--name", name, check=False))
    assert line == (
        f"ocm-manager: repo name {name!r} is all digits, which reads as a repo id; add a letter"
    )
    nothing_added(manager)


def test_a_source_named_in_digits_needs_a_name(manager: RunningManager, tmp_path: Path) -> None:
    source = make_repo(tmp_path / "2024")
    line = one_line(manager.cli("repo", "add", str(source), check=False))
    assert line == f"ocm-manager: {source} gives no usable repo name ('2024'); pick a --name"
    manager.cli("repo", "add", str(source), "--name", "y2024")
    assert [repo["name"] for repo in listed(manager)] == ["y2024"]


def test_an_empty_name_or_source_says_which(manager: RunningManager, tmp_path: Path) -> None:
    source = make_repo(tmp_path / "alpha")
    empty_name = one_line(manager.cli("repo", "add", str(source), "--name", "", check=False))
    assert empty_name == (
        "ocm-manager: --name is empty; give a name, or leave --name out to name it after the source"
    )
    empty_source = one_line(manager.cli("repo", "add", "", check=False))
    assert empty_source == (
        "ocm-manager: the source is empty; give a git URL or a path on the Manager to clone"
    )
    nothing_added(manager)


def test_push_create_names_a_folder_of_digits_so_the_manager_takes_it(
    manager: RunningManager, tmp_path: Path
) -> None:
    laptop = make_repo(tmp_path / "laptop" / "2024")
    created = Cli(manager)(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    assert [repo["name"] for repo in listed(manager)] == ["repo-2024"]
