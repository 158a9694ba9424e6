"""Clones started from the console: git's progress while it runs, the error kept after."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from manager.registry import ERROR, READY, Registry
from manager.repos import RepoError, reserve_repo, run_clone
from manager.web.clones import CloneJobs


def test_progress_lines_come_from_git_as_it_works(
    tmp_path: Path, git_repo: Callable[..., Path]
) -> None:
    registry = Registry(tmp_path / "manager.db")
    source = git_repo("big", files={f"f{n}.txt": f"{n}\n" * 50 for n in range(200)})
    repo = reserve_repo(registry, tmp_path / "repos", source.as_uri(), name=None)
    assert repo.status == "cloning"
    lines: list[str] = []
    done = run_clone(registry, repo, source.as_uri(), progress=lines.append)
    assert done.status == READY and done.branch == "main"
    assert any(line.startswith("Receiving objects:") for line in lines), lines
    assert (tmp_path / "repos" / "big" / "f199.txt").is_file()


def test_a_failed_console_clone_keeps_its_row_with_gits_message(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "manager.db")
    jobs = CloneJobs()
    repo_id = jobs.start(
        registry, tmp_path / "repos", str(tmp_path / "nowhere"), name="nowhere", branch=None
    )
    deadline = time.monotonic() + 30
    while (repo := registry.get_repo(repo_id)) and repo.status == "cloning":
        assert time.monotonic() < deadline, "the clone never finished"
        time.sleep(0.05)
    assert repo is not None and repo.status == ERROR
    assert repo.error.startswith("git clone failed: ") and "nowhere" in repo.error
    assert not (tmp_path / "repos" / "nowhere").exists()
    assert jobs.progress(repo_id) == ""


def test_a_source_that_looks_like_an_option_is_a_source(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "manager.db")
    repo = reserve_repo(registry, tmp_path / "repos", "--upload-pack=touch pwned", name="opt")
    try:
        run_clone(registry, repo, "--upload-pack=touch pwned")
    except RepoError as exc:
        assert "git clone failed" in str(exc)
    else:
        raise AssertionError("a clone of an option succeeded")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert registry.get_repo(repo.id) is None
