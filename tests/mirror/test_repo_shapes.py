"""Push and pull from the shapes real checkouts have: linked worktrees, submodules, partial
and shallow clones. The real CLI, a real Manager, real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from ocm.mirror import wire
from tests.mirror.helpers import repo_listing, tree_listing
from tests.mirror.test_refusals import follow, refusal
from tests.support.auth import bearer
from tests.support.git import git, make_repo
from tests.support.processes import Cli


def _missing(repo: Path) -> int:
    """How many objects a partial clone's history lacks (its promisor remote has them)."""
    listed = git(repo, "rev-list", "--objects", "--all", "--missing=print")
    return sum(line.startswith("?") for line in listed.splitlines())


def _server(path: Path) -> Path:
    """A repo with three commits, each changing a file: history a clone may leave behind."""
    make_repo(path, files={"f.txt": "v0\n"})
    for n in (1, 2):
        (path / "f.txt").write_text(f"v{n}\n")
        git(path, "commit", "-q", "-am", f"v{n}")
    git(path, "config", "uploadpack.allowFilter", "true")
    return path


def test_a_partial_clone_is_refused_without_fetching_and_pushes_once_fetched(
    ocm: Cli, tmp_path: Path
) -> None:
    server = _server(tmp_path / "server")
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", "--filter=blob:none", f"file://{server}", str(laptop))
    missing = _missing(laptop)
    assert missing
    (laptop / "f.txt").write_text("edited\n")

    what, todo = refusal(ocm(laptop, "push", "--create", "--yes"))
    assert "partial clone" in what
    assert _missing(laptop) == missing  # git fetched nothing from the promisor remote
    assert ocm.repos(laptop) == []

    follow(ocm, laptop, todo[0])
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    assert (manager_copy / "f.txt").read_text() == "edited\n"


def test_a_shallow_clone_says_to_fetch_the_history_the_manager_lacks(
    ocm: Cli, tmp_path: Path
) -> None:
    server = _server(tmp_path / "server")
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{server}", str(laptop))
    (laptop / "f.txt").write_text("edited\n")

    what, todo = refusal(ocm(laptop, "push", "--create", "--yes"))
    assert "shallow" in what
    assert ocm.repos(laptop) == []

    follow(ocm, laptop, todo[0])
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    assert git(manager_copy, "rev-list", "--count", "HEAD") == "3"


def test_a_pull_never_moves_a_branch_another_worktree_has_checked_out(
    ocm: Cli, tmp_path: Path
) -> None:
    laptop = make_repo(tmp_path / "laptop", origin="https://example.invalid/o/wt.git")
    linked = tmp_path / "linked tree"
    git(laptop, "worktree", "add", "-q", "-b", "feat", str(linked))
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    git(manager_copy, "switch", "-q", "-c", "feat")
    (manager_copy / "agent.txt").write_text("an agent's commit on feat\n")
    git(manager_copy, "add", "agent.txt")
    git(manager_copy, "commit", "-q", "-m", "agent")
    before = repo_listing(laptop), tree_listing(linked)

    for force in ((), ("--force",)):
        what, todo = refusal(ocm(laptop, "pull", *force))
        assert "feat" in what and str(linked) in what
        assert (repo_listing(laptop), tree_listing(linked)) == before
    assert git(linked, "status", "--porcelain") == ""

    follow(ocm, laptop, todo[0])
    done = ocm(laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (laptop / "agent.txt").exists()
    assert git(linked, "status", "--porcelain") == ""  # detached where it was


def test_a_submodule_arrives_as_git_checks_one_out_and_pushes_again_unchanged(
    ocm: Cli, tmp_path: Path
) -> None:
    library = make_repo(tmp_path / "library", files={"lib.txt": "lib\n"})
    laptop = make_repo(tmp_path / "laptop", origin="https://example.invalid/o/sup.git")
    subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib"],
        cwd=laptop,
        check=True,
        capture_output=True,
    )
    git(laptop, "commit", "-q", "-m", "a submodule")
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    # An empty folder, as `git clone` without --recurse-submodules leaves: git sees the
    # submodule as not checked out, not as deleted, and so does the next push.
    assert (manager_copy / "lib").is_dir()
    assert git(manager_copy, "status", "--porcelain") == ""

    (laptop / "README.md").write_text("edited\n")
    done = ocm(laptop, "push")
    assert done.returncode == 0, done.stderr
    done = ocm(laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (laptop / "lib/lib.txt").read_text() == "lib\n"


def test_a_checkout_whose_git_lives_elsewhere_is_told_where_to_run_instead(
    ocm: Cli, tmp_path: Path
) -> None:
    """A linked worktree, a submodule and a separate git dir are not mirrored (the journal,
    lock and marker live in a .git of the checkout's own): each refusal names the place
    that can be, or how to make one, and changes nothing."""
    main = make_repo(tmp_path / "main").resolve()
    linked = tmp_path / "linked"
    git(main, "worktree", "add", "-q", "-b", "side", str(linked))
    what, todo = refusal(ocm(linked, "push", "--create", "--yes"))
    assert what == f"{linked.resolve()} is a linked worktree (`git worktree add`) of {main}"
    assert todo == [f"run the command in {main}, the checkout that holds the repository"]

    sub_source = make_repo(tmp_path / "sub-source")
    git(main, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub_source), "sub")
    what, todo = refusal(ocm(main / "sub", "push", "--create", "--yes"))
    assert what == f"{main / 'sub'} is a submodule of {main}"
    assert ocm.repos(main) == []

    apart = tmp_path / "apart"
    git(tmp_path, "init", "-q", "-b", "main", "--separate-git-dir", str(tmp_path / "kept"), "apart")
    (apart / "f.txt").write_text("work\n")
    git(apart, "add", "f.txt")
    git(apart, "commit", "-q", "-m", "work")
    what, todo = refusal(ocm(apart, "push", "--create", "--yes"))
    assert what.startswith(f"{apart.resolve()} keeps its repository in ")
    moved_back = todo[0].split("`")[1]
    subprocess.run(moved_back, shell=True, check=True)
    done = ocm(apart, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    assert (ocm.manager.data_dir / "repos" / "apart" / "f.txt").read_text() == "work\n"


def test_a_branch_outside_ascii_goes_both_ways_and_shows_as_it_safely_can(
    ocm: Cli, tmp_path: Path
) -> None:
    """git takes any UTF-8 in a branch name; HTTP headers carry only ASCII, and a pull of
    such a branch was a 500 (the Manager failed writing the answer's headers). It travels
    quoted now, and an ocm from before is refused it with what to upgrade. A direction
    override (U+202E), which would show the rest of a line reversed on the terminal of
    whoever lists or pulls the repo, is shown as its code point on every line that names
    the branch; the branch itself arrives as it is."""
    branch = "фикс/\u202etxt.exe"
    shown = "фикс/\\u202etxt.exe"
    laptop = make_repo(tmp_path / "proj", files={"f.txt": "v0\n"})
    git(laptop, "switch", "-q", "-c", branch)
    pushed = ocm(laptop, "push", "--create", "--yes")
    (ocm.manager.data_dir / "repos" / "proj" / "f.txt").write_text("v1\n")
    older = requests.get(  # an ocm from before: it does not ask for the branch quoted
        f"{ocm.manager.url}/api/internal/repo-mirror/1/down",
        params={wire.VERSION_PARAM: str(wire.VERSION)},
        headers=bearer(ocm.manager.token),
        timeout=30,
    )
    pulled = ocm(laptop, "pull")
    listed = ocm(laptop, "list")
    admin = ocm.manager.cli("repo", "list")
    assert older.status_code == 400 and older.json()["error"] == "mirror_version", older.text
    assert older.json()["message"].endswith("upgrade ocm on the client machine")
    for done in (pushed, pulled, listed, admin):
        assert done.returncode == 0, done.stderr
        assert "\u202e" not in done.stdout + done.stderr, done
    assert f"ocm: created and pushed proj (#1): {shown} at " in pushed.stdout
    assert f"ocm: pulled proj (#1): {shown} at " in pulled.stdout
    assert f"proj  {shown}  ready" in listed.stdout
    assert f" proj{' ' * 20} {shown} " in admin.stdout
    assert git(laptop, "branch", "--show-current") == branch
    assert (laptop / "f.txt").read_text() == "v1\n"
