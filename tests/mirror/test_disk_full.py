"""A disk that fills up, on real small disks (tmpfs): every failure is one line that says the
disk is full and whose, and leaves every repo as it was."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocm.mirror import history, swap
from ocm.mirror import receive as receive_mod
from ocm.mirror.errors import NoSpace
from tests.mirror.conftest import push_new
from tests.mirror.helpers import repo_listing, rich_repo, transfer
from tests.support.disk import fill_up, free_up, needs_mount, small_disk
from tests.support.git import git
from tests.support.processes import Cli, RunningManager


def _on_a_full_disk(disk: Path, step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` run once another program has filled ``disk`` up, and keeps it full: what
    the failed step frees is taken again before anything else runs."""

    def run(*args: Any, **kwargs: Any) -> Any:
        fill_up(disk)
        try:
            return step(*args, **kwargs)
        finally:
            fill_up(disk)

    return run


# The steps of the switch that write, once the incoming files are staged.
SWITCH_STEPS = {
    # Written once the switch was done, its failure unsaid: the next transfer weighed the
    # files this one wrote as the receiver's own work, and refused.
    "the record of the state it leaves": (receive_mod, "write_marker"),
    "the old index's copy": (receive_mod, "copy_index"),
    # Half written, it was kept as a switch to undo, and its staged files with it: on the
    # full disk, until the Manager's next start.
    "the plan": (swap, "write_plan"),
    # Written once HEAD had moved, which the undo could then not move back: git writes a
    # lock file to move a ref, and the disk had no room for it.
    "the new index": (history, "rebuild_index"),
    # git says only "couldn't write '.git/refs/heads/main.lock'" of a full disk.
    "the branch and HEAD": (history, "move_head"),
}


@needs_mount
@pytest.mark.parametrize("step", SWITCH_STEPS)
def test_a_disk_that_fills_up_during_the_switch_is_named_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The receiving disk fills up once the pack is in and its files are staged: the
    transfer says the disk is full (a pull said its download broke off, the Manager that it
    hit an unexpected error) and the repo is as it was: files, index, HEAD, refs, stash."""
    sender = rich_repo(tmp_path / "sender")
    with small_disk(tmp_path / "disk", "100m") as disk:
        receiver = disk / "proj"
        git(sender.parent, "clone", "-q", str(sender), str(receiver))
        (receiver / "README.md").write_text("stashed here\n")
        git(receiver, "stash", "-q")
        (receiver / "debug.log").write_text("ignored, kept\n")
        (sender / "src/app.py").write_text("print('changed')\n")
        (sender / "src/more.py").write_text("more = 1\n")
        git(sender, "add", "-A")
        git(sender, "commit", "-q", "-m", "more")
        (sender / "README.md").write_text("# uncommitted\n")
        before = repo_listing(receiver)
        module, name = SWITCH_STEPS[step]
        monkeypatch.setattr(module, name, _on_a_full_disk(disk, getattr(module, name)))

        with pytest.raises(NoSpace, match=r"disk\b.* is full"):
            transfer(sender, receiver, disk)

        assert repo_listing(receiver) == before
        assert not list((disk / "staging").iterdir())


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``ocm: what; what to do`` line of a failed command (exit 1, no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done
    assert lines[0].startswith("ocm: ") and "Traceback" not in done.stderr, done
    return lines[0]


def _nothing_made_then_made(
    ocm: Cli, laptop: Path, before: dict[str, tuple], repos: Path, disk: Path
) -> None:
    """After a refused ``push --create``: the checkout as it was, no repo registered and no
    folder in ``repos``; once ``disk`` has room again, the same command makes the repo."""
    assert repo_listing(laptop) == before
    assert ocm.repos(laptop) == []
    assert not (repos / laptop.name).exists()
    free_up(disk)
    created = ocm(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    assert (repos / laptop.name / ".git").is_dir()


def _commit_a_big_file(checkout: Path, size: int = 4 << 20) -> bytes:
    data = os.urandom(size)  # random: git's compression leaves the pack as big
    (checkout / "big.bin").write_bytes(data)
    git(checkout, "add", "big.bin")
    git(checkout, "commit", "-q", "-m", "big")
    return data


@needs_mount
def test_a_push_to_a_manager_whose_disk_is_full_names_its_disk_and_the_next_one_lands(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The Manager's data dir (repos and staging) on a disk with 2 MB left, a push of 4 MB:
    the laptop's user reads that the Manager's disk is full and that whoever runs it frees
    space (it said "the receiving disk is full ...; free some space and try again; check
    the Manager's log"), both copies are as they were, the Manager keeps running, and once
    space is freed the same push lands."""
    with small_disk(tmp_path / "data", "100m") as data:
        manager = manager_factory("--no-opencode", data_dir=data)
        ocm = Cli(manager)
        p = push_new(ocm, tmp_path / "laptop" / "proj")
        big = _commit_a_big_file(p.laptop)
        laptop_before, manager_before = repo_listing(p.laptop), repo_listing(p.directory)
        fill_up(data, leave=2 << 20)

        line = _one_line(ocm(p.laptop, "push"))

        assert line.startswith("ocm: No room on the Manager's disk for the push to proj: "), line
        assert line.endswith(
            f"; whoever runs the Manager frees some space on the disk of {p.directory}, then"
            " run the command again"
        ), line
        assert "check the Manager's log" not in line and "HTTP 507" not in line
        assert repo_listing(p.laptop) == laptop_before
        assert repo_listing(p.directory) == manager_before
        assert manager.process.poll() is None
        free_up(data)
        done = ocm(p.laptop, "push")
        assert done.returncode == 0, done.stderr
        assert (p.directory / "big.bin").read_bytes() == big
        manager.stop()


@needs_mount
def test_a_push_whose_files_find_no_room_leaves_no_pack_behind(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """A pack that fits on the Manager's disk but whose files do not (24 MB of one line
    repeated packs to a few KB): the full-disk line, and the pack is not left in the
    Manager's object store, where it stayed on the full disk (each try adding a copy)."""
    with small_disk(tmp_path / "data", "100m") as data:
        manager = manager_factory("--no-opencode", data_dir=data)
        ocm = Cli(manager)
        p = push_new(ocm, tmp_path / "laptop" / "proj")
        (p.laptop / "big.txt").write_bytes(b"one line, again and again\n" * (30 << 20 >> 5))
        git(p.laptop, "add", "big.txt")
        git(p.laptop, "commit", "-q", "-m", "big")
        blob = git(p.laptop, "rev-parse", "HEAD:big.txt")
        manager_before = repo_listing(p.directory)
        fill_up(data, leave=40 << 20)

        line = _one_line(ocm(p.laptop, "push"))

        assert line.startswith(
            "ocm: No room on the Manager's disk for the push to proj: writing the incoming"
            " files needs 24.4 MB"
        ), line
        assert repo_listing(p.directory) == manager_before
        kept = subprocess.run(["git", "cat-file", "-e", blob], cwd=p.directory, check=False)
        assert kept.returncode != 0, "the pack of the refused push stayed"
        free_up(data)
        done = ocm(p.laptop, "push")
        assert done.returncode == 0, done.stderr
        assert git(p.directory, "rev-parse", "HEAD:big.txt") == blob
        manager.stop()


@needs_mount
def test_a_create_bigger_than_the_managers_free_space_is_forgotten(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """``push --create`` of 4 MB to a Manager with 2 MB free: the same line, and the repo it
    began is forgotten (no registry entry, no folder), so the same command works once space
    is freed."""
    with small_disk(tmp_path / "data", "100m") as data:
        manager = manager_factory("--no-opencode", data_dir=data)
        ocm = Cli(manager)
        laptop = rich_repo(tmp_path / "laptop" / "proj")
        _commit_a_big_file(laptop)
        before = repo_listing(laptop)
        fill_up(data, leave=2 << 20)

        line = _one_line(ocm(laptop, "push", "--create", "--yes"))

        assert line.startswith("ocm: No room on the Manager's disk for the push to proj: "), line
        # Not the repo's own folder, which the failed create removed.
        assert line.endswith(f"frees some space on the disk of {data / 'repos'}, then run the"
                             " command again"), line  # fmt: skip
        _nothing_made_then_made(ocm, laptop, before, data / "repos", data)
        manager.stop()


@needs_mount
def test_a_create_on_a_manager_whose_repos_disk_is_full_is_refused_as_such(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The Manager's repos on a disk with no room left at all (the registry on another):
    ``push --create`` cannot even make the repo (git init fails). It answered 500
    "Could not create the repo directory"; now the full-disk line, nothing left behind."""
    data = tmp_path / "data"
    with small_disk(data, "8m"), small_disk(data / "repos", "100m") as repos:
        manager = manager_factory("--no-opencode", data_dir=data)
        ocm = Cli(manager)
        laptop = rich_repo(tmp_path / "laptop" / "proj")
        before = repo_listing(laptop)
        fill_up(repos)

        line = _one_line(ocm(laptop, "push", "--create", "--yes"))

        assert line == (
            "ocm: No room on the Manager's disk for the push to proj: the receiving disk is"
            " full (or a file size limit was hit) while making the repo; whoever runs the"
            f" Manager frees some space on the disk of {repos}, then run the command again"
        ), line
        _nothing_made_then_made(ocm, laptop, before, repos, repos)
        manager.stop()


@needs_mount
def test_a_manager_whose_registry_cannot_be_written_still_pushes_and_pulls(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The data dir, and the registry in it, on a full disk of its own; the repos on another
    with room. A push and a pull land, and say so: what the registry notes of them (the
    console's last push and pull, the list's branch) waits for another transfer; the push
    was answered 500 "unexpected error" once its switch was done, and the pull broke off
    after its last byte. A ``push --create``, which the registry must record, is refused
    with the line that says so, and leaves nothing behind."""
    data = tmp_path / "data"
    with small_disk(data, "8m"), small_disk(data / "repos", "100m"):
        manager = manager_factory("--no-opencode", data_dir=data)
        ocm = Cli(manager)
        p = push_new(ocm, tmp_path / "laptop" / "proj")
        fill_up(data)

        (p.laptop / "src/app.py").write_text("print('pushed')\n")
        git(p.laptop, "commit", "-q", "-am", "laptop")
        pushed = ocm(p.laptop, "push")
        assert pushed.returncode == 0, pushed.stderr
        assert (p.directory / "src/app.py").read_text() == "print('pushed')\n"
        assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")
        (p.directory / "agent.txt").write_text("an agent's\n")
        pulled = ocm(p.laptop, "pull")
        assert pulled.returncode == 0, pulled.stderr
        assert (p.laptop / "agent.txt").read_text() == "an agent's\n"

        other = rich_repo(tmp_path / "laptop" / "other", origin="https://example.invalid/o.git")
        line = _one_line(ocm(other, "push", "--create", "--yes"))
        assert line.startswith("ocm: No room on the Manager's disk for the push to other: "), line
        assert "whoever runs the Manager frees some space" in line
        assert [repo["name"] for repo in ocm.repos(other)] == ["proj"]
        assert not (data / "repos" / "other").exists()
        assert manager.process.poll() is None
        free_up(data)
        created = ocm(other, "push", "--create", "--yes")
        assert created.returncode == 0, created.stderr
        manager.stop()
