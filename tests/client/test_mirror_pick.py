"""Among several Manager repos of one origin, push and pull follow ``ocm use``."""

from __future__ import annotations

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
    first = add_repo("first", origin="https://example.invalid/acme/widget.git")
    second = add_repo("second", source=first.source)
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", str(first.source), str(laptop))
    git(laptop, "remote", "set-url", "origin", "https://example.invalid/acme/widget.git")

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
