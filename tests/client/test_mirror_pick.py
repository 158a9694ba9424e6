"""Among several Manager repos of one origin, push and pull follow ``ocm use``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.client.conftest import AddedRepo, Recorder, run_ocm
from tests.support.git import git
from tests.support.processes import RunningManager


def test_a_push_goes_to_the_repo_ocm_use_picked_not_the_one_it_last_pushed_to(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    first, second, laptop = _two_repos_of_one_origin(add_repo, tmp_path)

    assert run_ocm("use", "first").returncode == 0
    done = run_ocm("push", cwd=laptop)
    assert done.returncode == 0, done.stderr
    assert f"first (#{first.repo_id})" in done.stdout

    assert run_ocm("use", "second").returncode == 0
    (laptop / "picked.txt").write_text("for the repo ocm use picked\n")
    done = run_ocm("push", cwd=laptop)
    assert done.returncode == 0, done.stderr
    assert f"second (#{second.repo_id})" in done.stdout
    assert (Path(second.directory) / "picked.txt").exists()
    assert not (Path(first.directory) / "picked.txt").exists()


def test_without_opencode_the_advice_to_ocm_use_still_picks_the_repo_to_push_to(
    login: RunningManager, add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> None:
    """A laptop installed with --no-opencode only pushes and pulls: the pick must hold."""
    first, second, laptop = _two_repos_of_one_origin(add_repo, tmp_path)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    no_opencode = {"PATH": str(only_git)}

    refused = run_ocm("push", cwd=laptop, env=no_opencode)
    assert refused.returncode == 1
    assert "matches 2 Manager repos" in refused.stderr
    assert "`ocm use <repoId>`" in refused.stderr

    picked = run_ocm("use", str(second.repo_id), env=no_opencode)
    assert picked.returncode == 1
    assert "cannot find `opencode`" in picked.stderr
    assert "is remembered as the last used repo" in picked.stderr

    (laptop / "picked.txt").write_text("for the repo ocm use picked\n")
    done = run_ocm("push", cwd=laptop, env=no_opencode)
    assert done.returncode == 0, done.stderr
    assert f"second (#{second.repo_id})" in done.stdout
    assert (Path(second.directory) / "picked.txt").exists()
    assert not (Path(first.directory) / "picked.txt").exists()


def _two_repos_of_one_origin(
    add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> tuple[AddedRepo, AddedRepo, Path]:
    """Two Manager repos of one origin, and a laptop's clone with that origin."""
    first = add_repo("first", origin="https://example.invalid/acme/widget.git")
    second = add_repo("second", source=first.source)
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", str(first.source), str(laptop))
    git(laptop, "remote", "set-url", "origin", "https://example.invalid/acme/widget.git")
    return first, second, laptop
