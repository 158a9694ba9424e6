"""The everyday push and pull go straight to the repo the checkout last mirrored with, and
find the right one again when that shortcut no longer holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ocm.mirror import wire
from tests.mirror.conftest import Pushed
from tests.mirror.helpers import rich_repo, tree_listing
from tests.support.auth import bearer
from tests.support.git import git
from tests.support.processes import Cli, ocm_command, run_manager_cli
from tests.support.tap import Tap

LIST = "/api/internal/opencode-workspaces"


@pytest.fixture
def tap(ocm: Cli) -> Iterator[Tap]:
    url = urlsplit(ocm.manager.url)
    relay = Tap((url.hostname or "127.0.0.1", url.port or 80))
    yield relay
    relay.close()


def _through(ocm: Cli, tap: Tap, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ocm`` reaching the Manager through ``tap``."""
    return subprocess.run(
        ocm_command(*args),
        cwd=cwd,
        env={**ocm.env(), "OPENCODE_MANAGER_URL": tap.url},
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _copy(p: Pushed, name: str, origin: str | None = None) -> Path:
    """Another checkout of the same work, in a folder named ``name``."""
    other = p.laptop.parent / name
    shutil.copytree(p.laptop, other, symlinks=True)
    git(other, "update-index", "-q", "--refresh")
    if origin:
        git(other, "remote", "set-url", "origin", origin)
    return other


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_everyday_push_and_pull_skip_the_repo_list(ocm: Cli, tap: Tap, tmp_path: Path) -> None:
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    _ok(_through(ocm, tap, laptop, "push", "--create", "--yes"))
    assert tap.requested(LIST)  # a new repo: found by the list
    directory = ocm.manager.data_dir / "repos" / "proj"

    tap.clear()
    (laptop / "README.md").write_text("# proj\nsecond line\n")
    _ok(_through(ocm, tap, laptop, "push"))
    (directory / "src/app.py").write_text("print('an agent was here')\n")
    _ok(_through(ocm, tap, laptop, "pull"))
    assert tap.requested("/api/internal/repo-mirror/1/up")
    assert tap.requested("/api/internal/repo-mirror/1/down")
    assert not tap.requested(LIST), bytes(tap.sent)[:400]
    assert tree_listing(directory) == tree_listing(laptop)


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_transfer_finds_its_repo_again_when_the_last_one_is_gone(
    ocm: Cli, pushed: Callable[..., Pushed], command: str
) -> None:
    """The Manager forgot the repo this checkout last used, and another repo of the same
    origin took its place: the transfer goes there, as the repo list says."""
    p = pushed("proj")
    _ok(ocm(p.laptop, "push"))  # the marker and the last repo both name p's repo
    again = _copy(p, "proj-again")
    run_manager_cli("repo", "remove", "--data-dir", str(ocm.manager.data_dir), "proj")
    created = _ok(ocm(again, "push", "--create", "--yes"))
    assert f"(#{p.repo_id})" not in created
    directory = ocm.manager.data_dir / "repos" / "proj-again"

    if command == "push":
        (p.laptop / "README.md").write_text("# proj\nafter the repo moved\n")
    else:
        (directory / "README.md").write_text("# proj\nwritten where the repo moved\n")
    said = _ok(ocm(p.laptop, command))
    assert "proj-again (#" in said, said
    assert tree_listing(directory) == tree_listing(p.laptop)


def test_a_checkout_whose_origin_changed_pushes_to_the_repo_of_its_new_origin(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    fork = "https://example.invalid/someone/fork.git"
    _ok(ocm(_copy(p, "fork", origin=fork), "push", "--create", "--yes"))
    _ok(ocm(p.laptop, "pull"))  # p's repo is the last one used again, and the marker's
    git(p.laptop, "remote", "set-url", "origin", fork)

    (p.laptop / "README.md").write_text("# proj\nfor the fork\n")
    said = _ok(ocm(p.laptop, "push"))
    assert "fork (#" in said, said
    assert "for the fork" not in (p.directory / "README.md").read_text()


def _without_origin(tmp_path: Path) -> Path:
    """A new project, one commit, no origin yet: put on the Manager with ``--create``."""
    laptop = tmp_path / "laptop" / "fresh"
    laptop.mkdir(parents=True)
    git(laptop, "init", "-q", "-b", "main")
    (laptop / "notes.txt").write_text("first\n")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "start")
    return laptop


def test_an_origin_added_after_the_create_keeps_the_checkout_with_its_copy(
    ocm: Cli, tmp_path: Path
) -> None:
    """The project got its remote after `ocm push --create` (`git remote add origin`, then
    a first `git push`): no Manager repo has that origin, and the one that is this
    checkout's copy has none; the transfers go there, not to a `--create` of a second, and
    the repo takes the origin, so that a clone of it elsewhere finds the repo too."""
    laptop = _without_origin(tmp_path)
    _ok(ocm(laptop, "push", "--create", "--yes"))
    origin = "https://example.invalid/someone/fresh.git"
    git(laptop, "remote", "add", "origin", origin.replace("https://", "https://me:s3cret@"))
    (laptop / "notes.txt").write_text("second\n")

    pushed = ocm(laptop, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert "using fresh (#" in pushed.stderr, pushed.stderr
    assert "s3cret" not in pushed.stderr
    directory = ocm.manager.data_dir / "repos" / "fresh"
    assert (directory / "notes.txt").read_text() == "second\n"
    listed = json.loads(_ok(ocm(laptop, "list", "--json")))
    assert [repo["originUrl"] for repo in listed] == [origin]
    assert git(directory, "remote", "get-url", "origin") == origin  # for its agents too
    (directory / "notes.txt").write_text("an agent's\n")
    pulled = ocm(laptop, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stderr == ""  # the marker has the new origin: no list, no note
    assert (laptop / "notes.txt").read_text() == "an agent's\n"

    elsewhere = tmp_path / "desktop" / "fresh"
    elsewhere.parent.mkdir()
    git(elsewhere.parent, "clone", "-q", str(laptop), str(elsewhere))
    git(elsewhere, "remote", "set-url", "origin", origin)
    (directory / "notes.txt").write_text("an agent's, later\n")
    pulled = ocm(elsewhere, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (elsewhere / "notes.txt").read_text() == "an agent's, later\n"


def test_an_origin_remote_set_by_hand_on_the_copy_stays(ocm: Cli, tmp_path: Path) -> None:
    """The repo takes the checkout's origin, but a remote someone gave its copy on the
    Manager (a mirror the agents push to) is theirs: it stays."""
    laptop = _without_origin(tmp_path)
    _ok(ocm(laptop, "push", "--create", "--yes"))
    directory = ocm.manager.data_dir / "repos" / "fresh"
    git(directory, "remote", "add", "origin", "https://example.invalid/team/mirror.git")
    git(laptop, "remote", "add", "origin", "https://example.invalid/someone/fresh.git")
    (laptop / "notes.txt").write_text("second\n")
    _ok(ocm(laptop, "push"))
    listed = json.loads(_ok(ocm(laptop, "list", "--json")))
    assert [repo["originUrl"] for repo in listed] == ["https://example.invalid/someone/fresh.git"]
    assert (
        git(directory, "remote", "get-url", "origin") == "https://example.invalid/team/mirror.git"
    )


def test_a_copy_whose_config_is_locked_keeps_its_remote_and_the_push_is_done(
    ocm: Cli, tmp_path: Path
) -> None:
    """Another git holds the copy's config (its lock is there): the repo still takes the
    origin and the push lands; the remote stays as it was, and the log says so."""
    laptop = _without_origin(tmp_path)
    _ok(ocm(laptop, "push", "--create", "--yes"))
    directory = ocm.manager.data_dir / "repos" / "fresh"
    (directory / ".git" / "config.lock").write_text("")
    git(laptop, "remote", "add", "origin", "https://example.invalid/someone/fresh.git")
    (laptop / "notes.txt").write_text("second\n")
    _ok(ocm(laptop, "push"))
    assert (directory / "notes.txt").read_text() == "second\n"
    listed = json.loads(_ok(ocm(laptop, "list", "--json")))
    assert [repo["originUrl"] for repo in listed] == ["https://example.invalid/someone/fresh.git"]
    assert "its origin remote is as it was" in ocm.manager.log()
    assert "could not set 'remote.origin.url'" in ocm.manager.log()
    (directory / ".git" / "config.lock").unlink()
    assert (
        subprocess.run(
            ["git", "remote", "get-url", "origin"], cwd=directory, capture_output=True
        ).returncode
        != 0
    )


@pytest.mark.parametrize(
    ("made_by", "refusal"),
    [
        ("push --create", "this checkout has rewritten those commits since"),
        ("repo add", "run `ocm push --force`"),  # no transfer yet: both sides have a commit
    ],
)
def test_an_amended_first_commit_is_pushed_over_its_old_self_with_force(
    ocm: Cli, tmp_path: Path, made_by: str, refusal: str
) -> None:
    """Without origin a checkout is matched by its root commit, which `git commit --amend`
    of the first commit replaces: the push still finds its copy (the one its last push
    made, or the one added from its folder: the amended commit's old self stays among the
    checkout's objects), and says what --force does about the rewritten commit."""
    laptop = _without_origin(tmp_path)
    if made_by == "repo add":
        run_manager_cli("repo", "add", "--data-dir", str(ocm.manager.data_dir), str(laptop))
    else:
        _ok(ocm(laptop, "push", "--create", "--yes"))
    directory = ocm.manager.data_dir / "repos" / "fresh"
    old = git(directory, "rev-parse", "HEAD")
    git(laptop, "commit", "-q", "--amend", "-m", "start, reworded")

    refused = ocm(laptop, "push")
    assert refused.returncode == 1
    assert "using fresh (#" in refused.stderr, refused.stderr
    assert refusal in refused.stderr, refused.stderr
    assert git(directory, "rev-parse", "HEAD") == old
    forced = ocm(laptop, "push", "--force")
    assert forced.returncode == 0, forced.stderr
    assert git(directory, "rev-parse", "HEAD") == git(laptop, "rev-parse", "HEAD")
    backup = git(directory, "for-each-ref", "--format=%(objectname)", "refs/ocm/backup/")
    assert backup == old


@pytest.mark.parametrize(
    ("origin", "code"),
    [("https://" + "x" * 200_000, "bad_origin"), ("https://h/\0x", "bad_request")],
)
def test_a_push_naming_an_origin_no_repo_may_take_changes_nothing(
    ocm: Cli, tmp_path: Path, origin: str, code: str
) -> None:
    laptop = _without_origin(tmp_path)
    _ok(ocm(laptop, "push", "--create", "--yes"))
    head = git(ocm.manager.data_dir / "repos" / "fresh", "rev-parse", "HEAD")
    response = requests.post(
        f"{ocm.manager.url}/api/internal/repo-mirror/1/up",
        params={"v": str(wire.VERSION), "originUrl": origin},
        data=b"",
        headers=bearer(ocm.manager.token),
        timeout=30,
    )
    assert (response.status_code, response.json()["error"]) == (400, code), response.text[:300]
    listed = json.loads(_ok(ocm(laptop, "list", "--json")))
    assert [repo["originUrl"] for repo in listed] == [None]
    assert git(ocm.manager.data_dir / "repos" / "fresh", "rev-parse", "HEAD") == head


def test_a_repo_added_from_a_checkout_without_origin_stays_its_copy_once_it_has_one(
    ocm: Cli, tmp_path: Path
) -> None:
    """The quick start's way: `ocm-manager repo add <folder>` of a checkout without origin
    records the folder's path as the repo's origin. The checkout then gets a remote, before
    any push or pull: its first push goes to the repo made from its folder, which takes the
    new origin."""
    laptop = _without_origin(tmp_path)
    run_manager_cli("repo", "add", "--data-dir", str(ocm.manager.data_dir), str(laptop))
    origin = "https://example.invalid/someone/fresh.git"
    git(laptop, "remote", "add", "origin", origin)
    (laptop / "notes.txt").write_text("second\n")

    pushed = ocm(laptop, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert "using fresh (#" in pushed.stderr, pushed.stderr
    directory = ocm.manager.data_dir / "repos" / "fresh"
    assert (directory / "notes.txt").read_text() == "second\n"
    listed = json.loads(_ok(ocm(laptop, "list", "--json")))
    assert [repo["originUrl"] for repo in listed] == [origin]
    # Its copy was cloned from the checkout's folder: its agents now fetch from the origin.
    assert git(directory, "remote", "get-url", "origin") == origin


@pytest.mark.parametrize("origin", [None, "https://example.invalid/someone/other.git"])
def test_another_project_in_the_folder_a_repo_was_added_from_is_not_its_copy(
    ocm: Cli, tmp_path: Path, origin: str | None
) -> None:
    """`repo add` recorded the folder's path, but the project there now is another one:
    its `.git` made anew (or a folder of the same path on another machine). Nothing of
    that repo's history is in it, so it is not that repo's copy: the push says no repo
    matches and touches nothing, where it went on to that repo's copy (and its advice,
    `--force`, would have put another project over it)."""
    laptop = _without_origin(tmp_path)
    run_manager_cli("repo", "add", "--data-dir", str(ocm.manager.data_dir), str(laptop))
    directory = ocm.manager.data_dir / "repos" / "fresh"
    before = tree_listing(directory)
    shutil.rmtree(laptop / ".git")
    git(laptop, "init", "-q", "-b", "main")
    if origin:
        git(laptop, "remote", "add", "origin", origin)
    (laptop / "other.txt").write_text("another project\n")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "another start")

    pushed = ocm(laptop, "push")
    assert pushed.returncode != 0
    assert "no Manager repo matches" in pushed.stderr, pushed.stderr
    assert "using fresh" not in pushed.stderr
    assert "ocm push --create" in pushed.stderr
    assert tree_listing(directory) == before
