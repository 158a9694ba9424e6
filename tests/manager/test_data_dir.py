"""The data dir is the Manager's alone: one ``serve`` at a time, and never someone else's
folder. Real ``ocm-manager`` processes on 127.0.0.1 port 0."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.git import make_repo
from tests.support.processes import manager_command, run_manager_cli


def _serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """A second ``serve``; it must stop by itself (the timeout only guards against a hang)."""
    return subprocess.run(
        manager_command("serve", "--port", "0", "--data-dir", str(data_dir), "--no-opencode"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _snapshot(folder: Path) -> tuple[int, dict[str, bytes]]:
    """A folder's mode and every file in it, to show a refusal left it as it was."""
    files = {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(folder.rglob("*"))
    }
    return stat.S_IMODE(folder.stat().st_mode), files


def test_a_second_serve_on_one_data_dir_is_refused_and_leaves_the_first_alone(manager_factory):
    first = manager_factory("--no-opencode")
    # A push in flight: the second Manager's start-up must not clean it away.
    in_flight = first.data_dir / "staging" / "push-1" / "tmp_pack_abc"
    in_flight.parent.mkdir(parents=True)
    in_flight.write_bytes(b"half a pack")

    second = _serve(first.data_dir)

    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"ocm-manager: another Manager (pid {first.process.pid}) is serving"
        f" {first.data_dir}; stop it first, or use another --data-dir"
    ]
    assert in_flight.read_bytes() == b"half a pack"
    assert first.process.poll() is None
    assert requests.get(f"{first.url}/api/health", timeout=10).status_code == 200
    # The other commands do not take the lock: they work beside a running serve.
    assert first.cli("repo", "list", "--json").stdout.strip() == "[]"
    assert first.cli("token", "rotate").stdout.strip().startswith("ocm_")


def test_a_killed_managers_lock_does_not_block_the_next(manager_factory, tmp_path):
    data_dir = tmp_path / "data"
    killed = manager_factory("--no-opencode", data_dir=data_dir)
    killed.stop(signal.SIGKILL)
    assert (data_dir / "serve.lock").read_text().strip() == str(killed.process.pid)

    after = manager_factory("--no-opencode", data_dir=data_dir)

    assert requests.get(f"{after.url}/api/health", timeout=10).status_code == 200
    assert (data_dir / "serve.lock").read_text().strip() == str(after.process.pid)


@pytest.mark.parametrize(
    "command", [("repo", "list"), ("token", "rotate"), ("serve", "--port", "0", "--no-opencode")]
)
def test_a_foreign_folder_is_refused_and_left_as_it_was(tmp_path, command):
    foreign = tmp_path / "shared"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's file")
    foreign.chmod(0o1777)
    before = _snapshot(foreign)

    result = run_manager_cli(*command, "--data-dir", str(foreign), check=False)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"ocm-manager: {foreign} is not an ocm-manager data dir (it has no manager.db) and"
        " not empty; pick a new or empty folder"
    ]
    assert _snapshot(foreign) == before


@pytest.mark.parametrize("command", [("repo", "list"), ("token", "rotate")])
def test_an_empty_data_dir_value_is_refused_not_taken_for_the_default(tmp_path, command):
    # `--data-dir "$UNSET"`: the default data dir (a real Manager's) must stay untouched.
    default = tmp_path / "home" / ".local" / "share" / "ocm-manager"
    run_manager_cli("token", "rotate")
    before = _snapshot(default)

    result = subprocess.run(
        manager_command(*command, "--data-dir", ""),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("ocm-manager: argument --data-dir: is empty")
    assert result.stdout == ""
    assert _snapshot(default) == before


def test_a_file_as_data_dir_is_one_line(tmp_path):
    a_file = tmp_path / "data"
    a_file.write_text("not a folder")

    itself = run_manager_cli("repo", "list", "--data-dir", str(a_file), check=False)
    under = run_manager_cli("repo", "list", "--data-dir", str(a_file / "sub"), check=False)

    assert itself.returncode == under.returncode == 1
    assert itself.stderr.splitlines() == [
        f"ocm-manager: the data dir {a_file} is a file; pick a folder"
    ]
    assert under.stderr.splitlines() == [
        f"ocm-manager: cannot make the data dir {a_file / 'sub'}: {a_file} is a file; pick a folder"
    ]
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path):
    # /proc takes no new folders, not even from root.
    where = Path("/proc/self/ocm-data")
    result = run_manager_cli("token", "rotate", "--data-dir", str(where), check=False)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ocm-manager: cannot use the data dir {where}: ")
    assert line.endswith("; pick a folder you can write to")


def test_serve_on_a_foreign_folder_starts_nothing(tmp_path):
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "README").write_text("x")
    result = _serve(foreign)
    assert result.returncode == 1
    assert "listening" not in result.stderr
    assert sorted(os.listdir(foreign)) == ["README"]


@pytest.mark.parametrize("command", [("repo", "list"), ("repo", "remove", "1")])
def test_a_missing_data_dir_is_not_made_by_a_command_that_only_reads_it(tmp_path, command):
    """`repo list --data-dir /typo` made /typo and said "no repos yet": a typo looked like
    an empty Manager. The advice given works when followed."""
    typo = tmp_path / "typo" / "data"

    result = run_manager_cli(*command, "--data-dir", str(typo), check=False)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"ocm-manager: the data dir {typo} (--data-dir) does not exist; check the path, or make"
        f" it with `ocm-manager serve --data-dir {typo}` or `ocm-manager repo add --data-dir"
        f" {typo} <git-url-or-path>`"
    ]
    assert not (tmp_path / "typo").exists()
    source = tmp_path / "src"
    subprocess.run(["git", "init", "-q", str(source)], check=True, timeout=60)
    subprocess.run(
        ["git", "-C", str(source), "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
        timeout=60,
        env={**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b",
             "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"},
    )  # fmt: skip
    run_manager_cli("repo", "add", "--data-dir", str(typo), str(source))
    assert run_manager_cli(*command, "--data-dir", str(typo)).returncode == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_a_broken_database_is_named_with_a_way_back_that_works(tmp_path, damage):
    data = tmp_path / "data"
    source = make_repo(tmp_path / "src")
    run_manager_cli("repo", "add", "--data-dir", str(data), "--name", "proj", str(source))
    database = data / "manager.db"
    if damage == "garbage":
        database.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        database.write_bytes(database.read_bytes()[:3000])
    else:
        database.unlink()
        database.mkdir()
    for leftover in data.glob("manager.db-*"):
        leftover.unlink()

    for result in (
        _serve(data),
        run_manager_cli("repo", "list", "--data-dir", str(data), check=False),
    ):
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith(f"ocm-manager: {database} is not a usable SQLite database ("), line
        assert "listening" not in result.stderr
    assert (data / "repos" / "proj" / ".git").is_dir()

    # The way back, followed literally.
    subprocess.run(f"mv {database} {database}.broken && touch {database}", shell=True, check=True)
    run_manager_cli("token", "rotate", "--data-dir", str(data))
    run_manager_cli(
        "repo", "add", "--data-dir", str(data), "--name", "proj2", str(data / "repos" / "proj")
    )
    listing = run_manager_cli("repo", "list", "--data-dir", str(data))
    assert "proj2" in listing.stdout
