"""A checkout without ``origin`` is matched by its root commit (SPEC §3, issue 14 item 3).

Against a real Manager, from real checkouts: what the Manager reports, bare ``ocm``,
``ocm push`` / ``ocm pull``, and ``ocm push --create`` without an origin. The quick start
registers a repo the way these tests do (``ocm-manager repo add <path> --name <name>``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import requests

from tests.client.conftest import AddedRepo, Recorder, assert_one_error, run_ocm
from tests.support.git import git, make_repo
from tests.support.processes import RunningManager


def workspaces(manager: RunningManager) -> dict[str, dict]:
    response = requests.get(
        f"{manager.url}/api/internal/opencode-workspaces",
        headers={"Authorization": f"Bearer {manager.token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {ws["name"]: ws for ws in response.json()["workspaces"]}


def root_of(repo: Path) -> str:
    return git(repo, "rev-list", "--max-parents=0", "HEAD")


def test_the_manager_reports_each_repos_root_commits_and_follows_head(
    login: RunningManager, add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> None:
    plain = add_repo("plain")
    assert workspaces(login)["plain"]["rootCommits"] == [root_of(plain.source)]

    # Two unrelated histories merged: both roots, sorted.
    twin = make_repo(tmp_path / "twin-source")
    other = make_repo(tmp_path / "other-history", files={"other.txt": "other\n"})
    roots = sorted([root_of(twin), root_of(other)])
    assert roots[0] != roots[1]
    merge = ["merge", "-q", "--no-edit", "--allow-unrelated-histories"]
    git(twin, "fetch", "-q", str(other), "main")
    git(twin, *merge, "FETCH_HEAD")
    login.cli("repo", "add", str(twin), "--name", "twin")
    assert workspaces(login)["twin"]["rootCommits"] == roots

    # Once known, HEAD moves on by a merge that brings another root: only the commits
    # since are walked, and the known root stays beside the new one.
    directory = Path(plain.directory)
    assert workspaces(login)["plain"]["rootCommits"] == [root_of(directory)]
    git(directory, "fetch", "-q", str(other), "main")
    git(directory, *merge, "FETCH_HEAD")
    assert workspaces(login)["plain"]["rootCommits"] == sorted(
        [root_of(plain.source), root_of(other)]
    )
    # Back to before the merge: not a descendant of what was known, so walked whole.
    git(directory, "reset", "-q", "--hard", "HEAD^1")
    assert workspaces(login)["plain"]["rootCommits"] == [root_of(plain.source)]

    # HEAD moves to another history on the Manager: the answer follows (no stale cache).
    git(directory, "checkout", "-q", "--orphan", "fresh")
    git(directory, "commit", "-q", "-m", "a new root")
    assert workspaces(login)["plain"]["rootCommits"] == [root_of(directory)]
    assert root_of(directory) != root_of(plain.source)


def test_a_history_git_cannot_read_is_logged_and_asked_again_once_mended(
    login: RunningManager, add_repo: Callable[..., AddedRepo]
) -> None:
    """Objects lost on the Manager (a restore, a disk fault) make git's walk fail: that is
    no answer to keep until HEAD moves, or the repo stays unfound after it is mended."""
    added = add_repo("proj")
    head = git(Path(added.directory), "rev-parse", "HEAD")
    objects = Path(added.directory) / ".git" / "objects"
    aside = objects.with_name("objects-aside")
    objects.rename(aside)
    objects.mkdir()
    assert workspaces(login)["proj"]["rootCommits"] == []
    assert "cannot list the root commits of" in login.log()
    assert f"bad object {head}" in login.log()
    # Unmatched, the push goes to the repo added from its folder, and meets the loss there.
    unfound = run_ocm("push", cwd=added.source)
    assert unfound.returncode == 1
    assert "no Manager repo matches root commit" in unfound.stderr, unfound.stderr
    assert "is missing objects its history needs" in unfound.stderr, unfound.stderr

    shutil.rmtree(objects)  # the push's look wrote a tree of its work tree there
    aside.rename(objects)
    assert workspaces(login)["proj"]["rootCommits"] == [root_of(added.source)]
    (added.source / "README.md").write_text("pushed once git can read the history\n")
    pushed = run_ocm("push", cwd=added.source)
    assert pushed.returncode == 0, pushed.stderr
    assert (Path(added.directory) / "README.md").read_text().startswith("pushed once")


def test_a_push_and_pull_by_origin_walk_no_history_on_the_manager(
    login: RunningManager, add_repo: Callable[..., AddedRepo]
) -> None:
    """Root commits only match checkouts without origin, and listing them may walk a long
    history for each repo whose HEAD moved (500,000 commits: 2.5 s): a checkout with an
    origin lists the repos without them. Seen here through another repo whose history git
    cannot read: a walk of it leaves its line in the Manager's log."""
    broken = add_repo("broken")
    objects = Path(broken.directory) / ".git" / "objects"
    objects.rename(objects.with_name("objects-aside"))
    objects.mkdir()
    target = add_repo("target", origin="https://github.com/acme/target")
    (target.source / "README.md").write_text("pushed by origin\n")
    pushed = run_ocm("push", cwd=target.source)
    assert pushed.returncode == 0, pushed.stderr
    (Path(target.directory) / "agent.txt").write_text("an agent's\n")
    pulled = run_ocm("pull", cwd=target.source)
    assert pulled.returncode == 0, pulled.stderr
    assert (target.source / "agent.txt").read_text() == "an agent's\n"
    assert "cannot list the root commits of" not in login.log()
    # A checkout without origin still gets them, so the broken one is walked (and logged).
    assert workspaces(login)["target"]["rootCommits"] == [root_of(target.source)]
    assert "cannot list the root commits of" in login.log()


def test_a_checkout_without_origin_keeps_its_root_commits_for_the_next_command(
    login: RunningManager, add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> None:
    """Walked once per history (0.5-2.5 s on 500,000 commits), kept in ``.git/ocm-roots``
    with the commit they are for, and walked only since that commit when HEAD moves on."""
    added = add_repo("proj")
    laptop = added.source
    kept = laptop / ".git" / "ocm-roots"
    (laptop / "README.md").write_text("one\n")
    assert run_ocm("push", cwd=laptop).returncode == 0
    assert kept.read_text().split() == [git(laptop, "rev-parse", "HEAD"), root_of(laptop)]

    # Another history merged in on top: its root joins the one kept.
    other = make_repo(tmp_path / "other-history", files={"other.txt": "other\n"})
    git(laptop, "fetch", "-q", str(other), "main")
    git(laptop, "merge", "-q", "--no-edit", "--allow-unrelated-histories", "FETCH_HEAD")
    both = sorted([root_of(other), *git(laptop, "rev-list", "--max-parents=0", "HEAD^1").split()])
    pushed = run_ocm("push", cwd=laptop)
    assert pushed.returncode == 0, pushed.stderr
    assert kept.read_text().split() == [git(laptop, "rev-parse", "HEAD"), *both]
    assert workspaces(login)["proj"]["rootCommits"] == both

    # What is kept is what is used: an answer for this HEAD that names another root (then
    # the repo added from this folder is taken, and the line says why).
    kept.write_text(f"{git(laptop, 'rev-parse', 'HEAD')} {'1' * 40}\n")
    unmatched = run_ocm("push", cwd=laptop)
    assert unmatched.returncode == 0, unmatched.stderr
    assert f"no Manager repo matches root commit {'1' * 12}; using proj" in unmatched.stderr
    # A kept answer that is not one is walked anew, and replaced.
    kept.write_text("not an answer\n")
    assert run_ocm("pull", cwd=laptop).returncode == 0
    assert kept.read_text().split() == [git(laptop, "rev-parse", "HEAD"), *both]


def test_a_restarted_manager_lists_root_commits_without_walking_again(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    manager_factory: Callable[..., RunningManager],
) -> None:
    """The Manager keeps each repo's answer in the repo (``.git/ocm-roots``): a restart does
    not walk every history again. Seen here through a history git can no longer read: a
    walk of it would fail and be logged."""
    added = add_repo("proj")
    directory = Path(added.directory)
    assert workspaces(login)["proj"]["rootCommits"] == [root_of(added.source)]
    head = git(directory, "rev-parse", "HEAD")
    assert (directory / ".git" / "ocm-roots").read_text().split() == [head, root_of(directory)]
    login.stop()
    objects = directory / ".git" / "objects"
    objects.rename(objects.with_name("objects-aside"))
    objects.mkdir()
    restarted = manager_factory("--no-opencode", data_dir=login.data_dir, token=login.token)
    assert workspaces(restarted)["proj"]["rootCommits"] == [root_of(added.source)]
    assert "cannot list the root commits of" not in restarted.log()


def test_bare_ocm_in_a_checkout_without_origin_attaches_to_the_repo_with_its_root(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    add_repo("decoy", origin="https://github.com/acme/decoy")
    target = add_repo("target")  # its source has no origin, like the quick start's repo
    checkout = target.source
    (checkout / "sub").mkdir()
    result = run_ocm(cwd=checkout / "sub")
    assert result.returncode == 0, result.stderr
    assert recorder.attached_dir() == target.directory
    assert f"root commit {root_of(checkout)[:12]}" in result.stderr
    state = json.loads((tmp_path / "home/.config/opencode-manager/state.json").read_text())
    assert state["lastRepoId"] == target.repo_id


def test_a_checkout_with_an_origin_is_matched_by_the_origin_only(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    checkout = add_repo("target").source
    git(checkout, "remote", "add", "origin", "https://github.com/acme/elsewhere")
    result = run_ocm(cwd=checkout)
    assert_one_error(result, 1, "no Manager repo has origin https://github.com/acme/elsewhere")
    assert not recorder.called()


def test_several_repos_with_the_root_are_listed(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    first = add_repo("first")
    source = first.source
    second = add_repo("second", source=source)
    result = run_ocm(cwd=source)
    assert_one_error(
        result,
        1,
        f"root commit {root_of(source)[:12]} matches 2 Manager repos",
        f"#{first.repo_id} first",
        f"#{second.repo_id} second",
        "ocm use",
    )
    assert not recorder.called()


def test_no_origin_and_no_commit_falls_to_rule_four(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    add_repo("lonely")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    result = run_ocm(cwd=empty)
    assert_one_error(result, 1, "no origin remote and no commit yet", "ocm use <repoId>")
    assert not recorder.called()


def test_push_and_pull_from_a_quick_start_repo_without_origin(
    login: RunningManager, add_repo: Callable[..., AddedRepo]
) -> None:
    added = add_repo("proj")
    laptop = added.source
    manager_dir = Path(added.directory)

    (laptop / "README.md").write_text("edited on the laptop\n")
    pushed = run_ocm("push", cwd=laptop)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed proj (#{added.repo_id})" in pushed.stdout
    assert (manager_dir / "README.md").read_text() == "edited on the laptop\n"

    (manager_dir / "agent.txt").write_text("written by an agent\n")
    pulled = run_ocm("pull", cwd=laptop)
    assert pulled.returncode == 0, pulled.stderr
    assert f"pulled proj (#{added.repo_id})" in pulled.stdout
    assert (laptop / "agent.txt").read_text() == "written by an agent\n"
    assert (laptop / "README.md").read_text() == "edited on the laptop\n"


def test_push_create_without_origin_then_every_command_finds_the_repo(
    login: RunningManager, recorder: Recorder, tmp_path: Path
) -> None:
    laptop = make_repo(tmp_path / "laptop" / "My Project", files={"a.txt": "a\n"})
    not_yet = run_ocm("push", cwd=laptop)
    assert_one_error(
        not_yet,
        1,
        f"no Manager repo matches root commit {root_of(laptop)[:12]} (no origin remote)",
        "ocm push --create",
    )
    created = run_ocm("push", "--create", "--yes", cwd=laptop)
    assert created.returncode == 0, created.stderr
    assert "created and pushed My-Project (#" in created.stdout
    repo = workspaces(login)["My-Project"]
    assert repo["originUrl"] == ""
    assert repo["rootCommits"] == [root_of(laptop)]

    (laptop / "a.txt").write_text("again\n")
    again = run_ocm("push", cwd=laptop)
    assert again.returncode == 0, again.stderr
    assert Path(repo["directory"], "a.txt").read_text() == "again\n"
    Path(repo["directory"], "b.txt").write_text("from the Manager\n")
    pulled = run_ocm("pull", cwd=laptop)
    assert pulled.returncode == 0, pulled.stderr
    assert (laptop / "b.txt").read_text() == "from the Manager\n"

    (tmp_path / "elsewhere").mkdir()
    assert run_ocm("use", "My-Project").returncode == 0  # the last repo is now this one …
    login.cli("repo", "add", str(make_repo(tmp_path / "other")), "--name", "other")
    assert run_ocm("use", "other").returncode == 0  # … and then another one
    result = run_ocm(cwd=laptop)  # the root commit wins over the last repo
    assert result.returncode == 0, result.stderr
    assert recorder.attached_dir() == repo["directory"]


def test_push_create_without_a_commit_says_to_commit_first(
    login: RunningManager, tmp_path: Path
) -> None:
    laptop = tmp_path / "unborn"
    laptop.mkdir()
    git(laptop, "init", "-q", "-b", "main")
    (laptop / "a.txt").write_text("not committed\n")
    result = run_ocm("push", "--create", "--yes", cwd=laptop)
    line = assert_one_error(result, 1, "has no commit yet on its branch main", "commit once")
    assert line.count(";") == 1, line  # its own advice, not a second, generic one
    # Without --create: nothing to match it by, and the way forward that leads somewhere.
    assert_one_error(
        run_ocm("push", cwd=laptop),
        1,
        f"{laptop} has no commit and no origin remote, so no Manager repo matches it",
        "commit once, then run `ocm push --create`",
    )
    assert_one_error(
        run_ocm("pull", cwd=laptop),
        1,
        f"{laptop} has no commit and no origin remote, so no Manager repo matches it",
        "add the origin remote of a Manager repo",
    )
    assert workspaces(login) == {}
    # A branch made with `git checkout --orphan` in a repo that has commits: named.
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "first")
    git(laptop, "checkout", "-q", "--orphan", "fresh")
    assert_one_error(
        run_ocm("push", "--create", "--yes", cwd=laptop),
        1,
        f"{laptop} has no commit yet on its branch fresh",
        "commit once",
    )
    assert workspaces(login) == {}
