"""`ocm-manager repo add/remove` when the source, the name or the clone goes wrong: one
line each, and nothing half-made left registered or on disk. Against a real Manager."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.git import dumb_http, git, make_repo, undeletable_file, write_files
from tests.support.processes import Cli, RunningManager, as_from_a_terminal, manager_command
from tests.support.proctree import kill_group_quietly, wait_until

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


def test_a_source_too_long_for_any_remote_is_refused(manager: RunningManager) -> None:
    # git could not even be started with it past 128 KiB ("install git", said the Manager).
    line = one_line(manager.cli("repo", "add", "https://h.test/" + "x" * 5000, check=False))
    assert line == ("ocm-manager: the source is longer than 4096 characters; give its URL or path")
    nothing_added(manager)


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
    empty_branch = one_line(manager.cli("repo", "add", str(source), "--branch", "", check=False))
    assert empty_branch == (
        "ocm-manager: --branch is empty; give a branch, or leave --branch out for the source's"
        " default"
    )
    empty_source = one_line(manager.cli("repo", "add", "", check=False))
    assert empty_source == (
        "ocm-manager: the source is empty; give a git URL or a path on the Manager to clone"
    )
    nothing_added(manager)


def test_a_line_break_in_the_source_or_branch_is_refused(
    manager: RunningManager, tmp_path: Path
) -> None:
    # Else it would forge a line of the log, which the console's Health page shows.
    forged = "ocm-manager: FORGED LINE"
    source = one_line(manager.cli("repo", "add", f"http://127.0.0.1:1/x\n{forged}", check=False))
    assert source == (
        "ocm-manager: the source holds a line break or another control character;"
        " give it on one line"
    )
    good = str(make_repo(tmp_path / "alpha"))
    branch = one_line(manager.cli("repo", "add", good, "--branch", f"main\r{forged}", check=False))
    assert "the branch holds a line break" in branch
    nothing_added(manager)
    assert forged not in manager.log()


def slow_git(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `git clone` clones, then hangs (a clone that takes its time), and
    the file it makes once the clone is on disk."""
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    marker = tmp_path / "clone-on-disk"
    wrapper = bin_dir / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = clone ]; then\n'
        f'  {shutil.which("git")} "$@" || exit $?\n'
        f"  : > {marker}\n"
        "  exec sleep 600\n"
        "fi\n"
        f'exec {shutil.which("git")} "$@"\n'
    )
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, marker


def start_slow_add(
    manager: RunningManager, tmp_path: Path, source: Path, name: str
) -> subprocess.Popen[str]:
    """`repo add` in its own process group, left once git has put the clone on disk."""
    env, marker = slow_git(tmp_path)
    process = subprocess.Popen(
        manager_command(
            "repo", "add", str(source), "--name", name, "--data-dir", str(manager.data_dir)
        ),
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,  # Ctrl-C at its default, as at a terminal
    )
    assert wait_until(marker.exists, timeout=120), process.communicate(timeout=60)
    [repo] = listed(manager)
    assert (repo["name"], repo["cloneStatus"]) == (name, "cloning")
    return process


def test_ctrl_c_during_an_add_leaves_nothing(manager: RunningManager, tmp_path: Path) -> None:
    source = make_repo(tmp_path / "big")
    process = start_slow_add(manager, tmp_path, source, "big")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert (stdout, stderr) == ("", "ocm-manager: interrupted; nothing was added\n")
    nothing_added(manager)
    manager.cli("repo", "add", str(source), "--name", "big")  # the name is free again


def crashed_mid_clone(
    manager_factory: Callable[..., RunningManager], tmp_path: Path, name: str
) -> tuple[RunningManager, Path, Path]:
    """A Manager killed while it cloned ``name``, and the one started after it on the same
    data dir: (that Manager, the data dir, the clone's source)."""
    data_dir = tmp_path / "data"
    first = manager_factory("--no-opencode", data_dir=data_dir)
    source = make_repo(tmp_path / name)
    process = start_slow_add(first, tmp_path, source, name)
    first.stop(signal.SIGKILL)
    kill_group_quietly(process.pid)  # the add dies with the machine, mid-clone
    process.communicate(timeout=60)
    return manager_factory("--no-opencode", data_dir=data_dir), data_dir, source


def test_the_advice_after_a_crash_mid_clone_works_as_written(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    manager, data_dir, source = crashed_mid_clone(manager_factory, tmp_path, "big3")
    [repo] = listed(manager)
    assert repo["error"] == "clone interrupted; remove the repo and add it again"
    removed = manager.cli("repo", "remove", "big3")
    directory = data_dir / "repos" / "big3"
    assert removed.stdout == (
        f"ocm-manager: removed repo {repo['repoId']} big3; deleted its unfinished clone in"
        f" {directory}\n"
    )
    assert not directory.exists()
    manager.cli("repo", "add", str(source), "--name", "big3")
    assert [(r["name"], r["cloneStatus"]) for r in listed(manager)] == [("big3", "ready")]


def test_remove_never_points_at_files_that_are_not_there(
    manager: RunningManager, tmp_path: Path
) -> None:
    manager.cli("repo", "add", str(make_repo(tmp_path / "gone")))
    shutil.rmtree(manager.data_dir / "repos" / "gone")
    removed = manager.cli("repo", "remove", "gone")
    assert removed.stdout.endswith("; it had no files\n"), removed.stdout


def test_remove_says_which_files_it_could_not_delete(
    manager: RunningManager, tmp_path: Path
) -> None:
    manager.cli("repo", "add", str(make_repo(tmp_path / "stuck")))
    directory = manager.data_dir / "repos" / "stuck"
    with undeletable_file(directory) as locked:
        removed = manager.cli("repo", "remove", "stuck", "--delete-files", check=False, bound=True)
        assert one_line(removed) == (
            "ocm-manager: removed repo 1 stuck, but could not delete all of its files"
            f" (pgdata/PG_VERSION: Permission denied); delete {directory} as a user allowed to"
            " (its owner, or root) before a repo named stuck is added again"
        )
        assert listed(manager) == []
        assert locked.exists()
    shutil.rmtree(directory)  # as it says: then the name is free again
    manager.cli("repo", "add", str(tmp_path / "stuck"))
    assert [r["name"] for r in listed(manager)] == ["stuck"]


def test_a_password_in_the_url_is_used_for_the_clone_and_then_forgotten(
    manager: RunningManager, tmp_path: Path
) -> None:
    with dumb_http(make_repo(tmp_path / "widget")) as url:
        with_password = url.replace("http://", f"http://alice:{PASSWORD}@")
        added = manager.cli("repo", "add", with_password)
    [repo] = listed(manager)
    assert repo["originUrl"] == url
    directory = Path(repo["directory"])
    assert git(directory, "remote", "get-url", "origin") == url
    assert PASSWORD not in (directory / ".git" / "config").read_text()
    assert PASSWORD not in added.stdout + added.stderr
    assert PASSWORD not in manager.cli("repo", "list").stdout

    for secret in (
        f"http://alice:{PASSWORD}@127.0.0.1:1/x.git",
        f"http://127.0.0.1:1/x.git?access_token={PASSWORD}",
    ):
        failed = manager.cli("repo", "add", secret, check=False)
        assert "git clone failed" in one_line(failed) and PASSWORD not in failed.stderr
    assert PASSWORD not in manager.log()


def test_push_create_stores_a_laptops_origin_without_its_password(
    manager: RunningManager, tmp_path: Path
) -> None:
    origin = f"https://alice:{PASSWORD}@example.invalid/acme/widget.git"
    laptop = make_repo(tmp_path / "laptop" / "widget", origin=origin)
    ocm = Cli(manager)
    created = ocm(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    [repo] = listed(manager)
    assert repo["originUrl"] == "https://example.invalid/acme/widget.git"
    assert PASSWORD not in (Path(repo["directory"]) / ".git" / "config").read_text()
    # The laptop still finds its repo by origin, password or not.
    write_files(laptop, {"more.txt": "more\n"})
    again = ocm(laptop, "push")
    assert again.returncode == 0, again.stderr
    assert (Path(repo["directory"]) / "more.txt").is_file()
    assert PASSWORD not in manager.log()


def test_push_create_names_a_folder_of_digits_so_the_manager_takes_it(
    manager: RunningManager, tmp_path: Path
) -> None:
    laptop = make_repo(tmp_path / "laptop" / "2024")
    created = Cli(manager)(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    assert [repo["name"] for repo in listed(manager)] == ["repo-2024"]
