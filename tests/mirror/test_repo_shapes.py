"""Push and pull from the shapes real checkouts have: linked worktrees, submodules, partial
and shallow clones, SHA-256 repositories. The real CLI, a real Manager, real git."""

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


def test_a_sha256_repository_is_mirrored_into_one_of_its_kind(ocm: Cli, tmp_path: Path) -> None:
    """``git init --object-format=sha256``: the Manager's copy is made of that kind too (it
    was made SHA-1, and git refused the pack as "bogus commit object")."""
    laptop = make_repo(tmp_path / "proj", files={"f.txt": "v0\n"}, object_format="sha256")
    (laptop / "new.txt").write_text("untracked\n")
    pushed = ocm(laptop, "push", "--create", "--yes")
    assert pushed.returncode == 0, pushed.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "proj"
    assert git(manager_copy, "rev-parse", "--show-object-format") == "sha256"
    assert tree_listing(manager_copy) == tree_listing(laptop)

    (manager_copy / "f.txt").write_text("agent\n")
    pulled = ocm(laptop, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (laptop / "f.txt").read_text() == "agent\n"
    (laptop / "f.txt").write_text("mine\n")
    assert ocm(laptop, "push").returncode == 0
    assert (manager_copy / "f.txt").read_text() == "mine\n"


def test_repositories_of_two_hash_functions_say_so_and_change_nothing(
    ocm: Cli, tmp_path: Path
) -> None:
    """A SHA-1 checkout of a project whose Manager copy is SHA-256: git moves no objects
    between the two, and said only "bogus commit object", or that both sides had changed."""
    origin = "https://example.com/acme/proj.git"
    first = make_repo(tmp_path / "proj", origin=origin, object_format="sha256")
    assert ocm(first, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "proj"
    laptop = make_repo(tmp_path / "sha1", origin=origin, files={"f.txt": "work\n"})
    before = repo_listing(manager_copy), repo_listing(laptop)

    said = {
        "push": (
            "The Manager's copy of proj names its objects by SHA-256, this checkout by SHA-1,"
            " and git moves no objects between the two",
            "push this checkout to a Manager repo of its kind: `ocm push --create --name "
            "<another name>` makes one",
        ),
        "pull": (
            "This checkout names its objects by SHA-1, the Manager by SHA-256, and git moves "
            "no objects between the two",
            "pull into a checkout of the Manager's kind: in a new folder, `git init "
            "--object-format=sha256`, give it this checkout's origin and run `ocm pull`",
        ),
    }
    for command, (what, todo) in said.items():
        for force in ((), ("--force",)):
            assert refusal(ocm(laptop, command, *force)) == (what, [todo])
    # A client that sends all the same (one from before) is refused by the Manager itself.
    sha1_pack = subprocess.run(
        ["git", "pack-objects", "--stdout", "--revs"],
        cwd=laptop,
        input=b"HEAD\n",
        capture_output=True,
        check=True,
    ).stdout
    sent = requests.post(
        f"{ocm.manager.url}/api/internal/repo-mirror/1/up",
        params={
            wire.VERSION_PARAM: str(wire.VERSION),
            "snapshot": git(laptop, "rev-parse", "HEAD"),
        },
        data=sha1_pack,
        headers={**bearer(ocm.manager.token), "Content-Type": wire.PACK_TYPE},
        timeout=30,
    )
    assert sent.status_code == 409 and sent.json()["error"] == "object_format", sent.text
    assert sent.json()["message"].startswith(
        "The Manager's copy of proj names its objects by SHA-256, the push by SHA-1"
    )
    assert (repo_listing(manager_copy), repo_listing(laptop)) == before

    # The advice, followed: a SHA-256 checkout with that origin pulls.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "--object-format=sha256")
    git(fresh, "remote", "add", "origin", origin)
    pulled = ocm(fresh, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert tree_listing(fresh) == tree_listing(manager_copy)


def test_a_sparse_checkout_travels_whole(ocm: Cli, tmp_path: Path) -> None:
    """The files outside the patterns travel as the index has them (the Manager's copy has
    every file); a pull writes those that changed there, as git's own merges do, and
    `git sparse-checkout reapply` takes them out again once committed (README, What
    travels)."""
    laptop = make_repo(tmp_path / "proj", files={"in/a.txt": "a\n", "out/b.txt": "b\n"})
    git(laptop, "sparse-checkout", "set", "in")
    assert not (laptop / "out").exists()
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "proj"
    assert (manager_copy / "out" / "b.txt").read_text() == "b\n"
    assert git(manager_copy, "status", "--porcelain") == ""

    (manager_copy / "in" / "a.txt").write_text("agent\n")
    (manager_copy / "out" / "c.txt").write_text("new\n")
    (manager_copy / "out" / "b.txt").write_text("b2\n")
    git(manager_copy, "commit", "-qam", "agent's b")
    pulled = ocm(laptop, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert tree_listing(laptop) == tree_listing(manager_copy)
    assert git(laptop, "ls-files", "-v", "out") == "H out/b.txt"
    (manager_copy / "in" / "a.txt").write_text("again\n")
    assert ocm(laptop, "pull").returncode == 0
    assert git(laptop, "ls-files", "-v", "out") == "H out/b.txt"
    git(laptop, "status")
    git(laptop, "sparse-checkout", "reapply")
    assert not (laptop / "out" / "b.txt").exists()
    assert git(laptop, "ls-files", "-v", "out") == "S out/b.txt"
    assert (laptop / "out" / "c.txt").read_text() == "new\n"  # untracked: git keeps it
    # Still sparse, an edit inside the patterns goes up; out/b.txt stays as committed there.
    (laptop / "in" / "a.txt").write_text("mine\n")
    assert ocm(laptop, "push").returncode == 0
    assert (manager_copy / "in" / "a.txt").read_text() == "mine\n"
    assert (manager_copy / "out" / "b.txt").read_text() == "b2\n"
