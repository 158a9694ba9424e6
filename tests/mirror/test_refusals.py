"""Every refusal of push and pull names a way forward, and the way forward works (issue 14).

Each test makes a refusal happen with the real CLI against a real Manager, then FOLLOWS the
advice in the error line literally: the backticked commands of the first alternative (or
the one named), in order, from the checkout. Then it checks that they all succeeded, that
both sides agree, and that nothing either side had is lost.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ocm.mirror.select import STAGING_NAME
from ocm.refusals import SOME, Work, pull_refused, push_refused, since_text
from tests.mirror.conftest import (
    Pushed,
    TuiScene,
    agent_commits,
    both_sides_change,
    commit_on_laptop,
    push_new,
)
from tests.mirror.helpers import rich_repo, tree_listing
from tests.support import proctree
from tests.support.git import git
from tests.support.processes import Cli, RunningManager, ocm_command
from tests.support.terminal import read_until_closed
from tests.support.upstream import RecordingUpstream, stand_in_env

BACKUP_REF = re.compile(r"refs/ocm/backup/[^\s`]+")


def refusal(done: subprocess.CompletedProcess[str]) -> tuple[str, list[str]]:
    """(what went wrong, the alternatives of what to do) from the one ``ocm:`` line."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ocm: ") and "; " in lines[0], lines[0]
    what, todo = lines[0][len("ocm: ") :].split("; ", 1)
    return what, re.split(r"[;,] or,? ", todo)


def follow(ocm: Cli, cwd: Path, advice: str) -> list[subprocess.CompletedProcess[str]]:
    """Run the backticked commands of ``advice`` in order; each must succeed.

    "`git merge` the backup ref it prints" merges the ref an earlier command printed.
    """
    commands = re.findall(r"`([^`]+)`", advice)
    assert commands, advice
    results: list[subprocess.CompletedProcess[str]] = []
    for command in commands:
        words = shlex.split(command)
        if words[0] == "ocm":
            done = ocm(cwd, *words[1:])
        else:
            assert words[0] == "git", command
            if words == ["git", "merge"]:
                printed = BACKUP_REF.findall("".join(done.stdout for done in results))
                assert len(printed) == 1, results[-1].stdout
                words += ["--no-edit", printed[0]]
            done = subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        results.append(done)
    return results


def both_sides_equal(p: Pushed) -> None:
    assert tree_listing(p.directory) == tree_listing(p.laptop)
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")


def assert_both_edits(root: Path) -> None:
    """``root`` holds the work of both sides that ``both_sides_change`` made."""
    assert (root / "README.md").read_text() == "agent edit\n"
    assert (root / "agent-notes.md").read_text() == "agent's untracked file\n"
    assert (root / "src/app.py").read_text() == "print('laptop')\n"
    assert (root / "laptop-notes.md").read_text() == "laptop's untracked file\n"


WORK = [Work(), Work(uncommitted=True), Work(commits=2), Work(True, SOME)]


@pytest.mark.parametrize("manager_on", [None, "feature"])
@pytest.mark.parametrize("tui", [False, True])
@pytest.mark.parametrize("manager", [*WORK, Work(detached=1)])
@pytest.mark.parametrize("here", WORK)
def test_no_advice_leads_back_to_a_refusal(
    tui: bool, manager: Work, here: Work, manager_on: str | None
) -> None:
    """The rules, for every combination: no step of the first way forward is refused.

    Push is refused over the Manager's work or a TUI; pull over this checkout's work. With
    the Manager on another branch, the pull switches there and leaves this one's commits.
    """
    dirty = manager.uncommitted
    refused = push_refused(
        "proj",
        "main",
        manager=manager,
        here=here,
        tui=tui,
        tui_since=None,
        dirty=dirty,
        manager_on=manager_on,
    )
    if not manager and not tui:
        assert refused is None
        return
    assert refused is not None and refused.todo
    first = re.split(r"[;,] or,? ", refused.todo)[0]
    steps = re.findall(r"`([^`]+)`", first)
    if "ocm pull" in steps:  # a plain pull: only when this checkout has nothing at risk
        assert not (here.uncommitted if manager_on else here)
    if here and manager and manager_on:  # the pull leaves this branch's commits alone
        forced = "ocm pull --force" if here.uncommitted else "ocm pull"
        assert steps[0] == forced and steps[-1] == "ocm push"
        assert f"switches this checkout to {manager_on}" in first
        assert ("leaving your commits on main" in first) == bool(here.commits)
        assert ("`git stash pop`" in first) == here.uncommitted
        assert "`git merge`" not in first and "`git commit" not in first
        assert ("`git add -A`" in first) == (dirty and here.uncommitted)
        assert ("close the TUI" in first) == tui
    elif here and manager:  # both changed: forced pull, get yours back, push
        assert steps[0] == "ocm pull --force" and steps[-1] == "ocm push"
        assert ("`git stash pop`" in first) == here.uncommitted
        assert ("`git merge`" in first) == bool(here.commits)
        # What the pull brings uncommitted is staged before the pop, committed before a merge.
        assert ("`git add -A`" in first) == dirty
        assert ("`git commit" in first) == (dirty and bool(here.commits))
        assert ("close the TUI" in first) == tui
    pulled = pull_refused(
        "proj", "main", here=here, manager_changed=bool(manager), dirty=dirty, tui=tui, on="main"
    )
    if not here:
        assert pulled is None
        return
    assert pulled is not None and pulled.todo
    first = re.split(r"[;,] or,? ", pulled.todo)[0]
    steps = re.findall(r"`([^`]+)`", first)
    assert "ocm pull" not in steps
    assert ("close the TUI" in first) == tui  # else its push is refused
    if not manager:  # the Manager has nothing newer: a push goes through
        assert steps == ["ocm push"]
    else:
        assert steps[0] == "ocm pull --force" and steps[-1] == "ocm push"


@pytest.mark.parametrize("tui", [False, True])
@pytest.mark.parametrize("manager", WORK[1:])
@pytest.mark.parametrize("uncommitted", [False, True])
def test_a_detached_heads_own_commits_are_kept_by_the_advice(
    tui: bool, manager: Work, uncommitted: bool
) -> None:
    """A checkout on a detached HEAD with commits of its own: the pull that moves HEAD to
    the Manager's branch leaves them (it refuses, unforced), so no advice may start with a
    plain pull; the forced one keeps them as a backup ref to merge back."""
    here = Work(uncommitted=uncommitted, detached=1)
    refused = push_refused(
        "proj", None, manager=manager, here=here, tui=tui, dirty=manager.uncommitted,
        manager_on="main",
    )  # fmt: skip
    pulled = pull_refused(
        "proj", "main", here=here, manager_changed=True, dirty=manager.uncommitted, tui=tui
    )
    for said in (refused, pulled):
        assert said is not None and said.todo
        assert "1 commit on a detached HEAD" in said.what
        first = re.split(r"[;,] or,? ", said.todo)[0]
        steps = re.findall(r"`([^`]+)`", first)
        assert steps[0] == "ocm pull --force" and steps[-1] == "ocm push", first
        assert "your detached HEAD's commits under refs/ocm/backup/" in first
        assert "`git merge` the backup ref it prints" in first
        assert ("`git stash pop`" in first) == uncommitted


def test_since_reads_as_a_clock_and_an_age() -> None:
    now = time.mktime((2026, 11, 30, 14, 15, 0, 0, 0, -1))
    assert since_text(now - 20, now) == "14:14, just now"
    assert since_text(now - 12 * 60, now) == "14:03, 12 min ago"
    assert since_text(now - 3 * 3600 - 5 * 60, now) == "11:10, 3 h 5 min ago"
    assert since_text(now - 2 * 86400, now).startswith("2026-11-28 14:15, ")


def test_push_over_manager_commits_says_pull_and_pull_then_push_work(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    agent_tip = agent_commits(p)

    what, ways = refusal(ocm(p.laptop, "push"))
    assert what == "the Manager's copy of proj has new commits on main that this checkout lacks"
    assert ways[0].startswith("run `ocm pull` to bring them here")
    assert "`ocm push --force`" in ways[1] and "refs/ocm/backup/" in ways[1]
    assert git(p.directory, "rev-parse", "HEAD") == agent_tip

    follow(ocm, p.laptop, ways[0])
    assert git(p.laptop, "rev-parse", "HEAD") == agent_tip
    assert ocm(p.laptop, "push").returncode == 0  # nothing in the way any more
    both_sides_equal(p)


@pytest.mark.parametrize("first", ["push", "pull"])
def test_both_sides_uncommitted_the_advised_sequence_keeps_both(
    ocm: Cli, pushed: Callable[..., Pushed], first: str
) -> None:
    p = pushed("proj")
    both_sides_change(p)

    what, ways = refusal(ocm(p.laptop, first))
    assert what.startswith("both sides changed: ")
    assert "uncommitted changes" in what
    assert "`ocm pull --force`" in ways[0] and "`git stash pop`" in ways[0]
    # The way forward ends in a push that succeeds: no loop back to this refusal.
    assert re.findall(r"`([^`]+)`", ways[0])[-1] == "ocm push"
    follow(ocm, p.laptop, ways[0])
    assert_both_edits(p.laptop)
    assert_both_edits(p.directory)
    both_sides_equal(p)


def _edit_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number] = text
    path.write_text("".join(line + "\n" for line in lines))


def test_a_file_pushed_untracked_then_edited_here_keeps_both_sides_edits(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The pull brings the file back as it was pushed, untracked; the stash holds this
    side's edit of it. Kept as git stash -u keeps untracked files, ``git stash pop`` would
    refuse to restore it over the one the pull brought."""
    p = pushed("proj")
    (p.laptop / "notes.txt").write_text("first note\n")
    assert ocm(p.laptop, "push").returncode == 0
    (p.directory / "README.md").write_text("agent edit\n")  # the agent, meanwhile
    (p.laptop / "notes.txt").write_text("first note\nsecond note\n")

    what, ways = refusal(ocm(p.laptop, "pull"))
    assert what.startswith("both sides changed: ")
    follow(ocm, p.laptop, ways[0])
    for root in (p.laptop, p.directory):
        assert (root / "notes.txt").read_text() == "first note\nsecond note\n"
        assert (root / "README.md").read_text() == "agent edit\n"
    both_sides_equal(p)


def test_a_second_checkout_pushes_over_no_work_it_never_had(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """Two checkouts of one repo: what one pushed uncommitted exists only there and on the
    Manager. The other's push must not take it for a state it shares, or the first one's
    next pull deletes it from the last place it was."""
    p = pushed("proj")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(p.laptop), str(other))
    git(other, "remote", "set-url", "origin", git(p.laptop, "remote", "get-url", "origin"))
    assert ocm(other, "pull").returncode == 0
    (p.laptop / "first-work.txt").write_text("only in the first checkout\n")
    assert ocm(p.laptop, "push").returncode == 0
    (other / "second-work.txt").write_text("only in the second checkout\n")

    what, ways = refusal(ocm(other, "push"))
    assert what.startswith("both sides changed: ") and "uncommitted changes" in what
    assert (p.directory / "first-work.txt").is_file()
    follow(ocm, other, ways[0])
    pulled = ocm(p.laptop, "pull")
    assert pulled.returncode == 0, pulled.stderr
    for root in (p.laptop, other, p.directory):
        assert (root / "first-work.txt").read_text() == "only in the first checkout\n"
        assert (root / "second-work.txt").read_text() == "only in the second checkout\n"


@pytest.mark.parametrize("first", ["push", "pull"])
@pytest.mark.parametrize("laptop_commits", [False, True])
def test_both_sides_editing_one_file_the_advised_sequence_keeps_both(
    ocm: Cli, pushed: Callable[..., Pushed], first: str, laptop_commits: bool
) -> None:
    """The pull brings the agent's edit uncommitted, into the file the stash changes too:
    git would not apply the stash (or merge) over it unless the advice stages (or commits)
    it first."""
    p = pushed("proj")
    (p.laptop / "shared.txt").write_text("".join(f"line {n}\n" for n in range(1, 8)))
    git(p.laptop, "add", "shared.txt")
    git(p.laptop, "commit", "-q", "-m", "shared file")
    assert ocm(p.laptop, "push").returncode == 0
    _edit_line(p.directory / "shared.txt", 0, "the agent's first line")
    if laptop_commits:
        commit_on_laptop(p)
    _edit_line(p.laptop / "shared.txt", 6, "the laptop's last line")

    what, ways = refusal(ocm(p.laptop, first))
    assert what.startswith("both sides changed: ")
    follow(ocm, p.laptop, ways[0])
    for root in (p.laptop, p.directory):
        lines = (root / "shared.txt").read_text().splitlines()
        assert lines[0] == "the agent's first line" and lines[6] == "the laptop's last line"
        assert (root / "laptop.txt").exists() == laptop_commits
    both_sides_equal(p)


def test_a_pull_on_another_branch_than_its_unsent_commits_names_the_switch(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The checkout has an unsent commit on main, the Manager's branch, but stands on
    another: "run `ocm push`" sent that other branch, and the pull refused again."""
    p = pushed("proj")
    commit_on_laptop(p, "committed on main\n")
    git(p.laptop, "switch", "-q", "-c", "feature")

    what, ways = refusal(ocm(p.laptop, "pull"))

    assert what.startswith("this checkout has 1 commit on main"), what
    assert ways[0].startswith("run `git switch main`, then `ocm push` to send them"), ways
    follow(ocm, p.laptop, ways[0])
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "main")
    assert ocm(p.laptop, "pull").returncode == 0


@pytest.mark.parametrize("first", ["push", "pull"])
def test_a_commit_on_a_detached_head_and_an_agents_work_the_advice_keeps_both(
    ocm: Cli, pushed: Callable[..., Pushed], first: str
) -> None:
    """The checkout made a commit on a detached HEAD (a tag checked out, say); the agent
    left a file uncommitted. The push said "run `ocm pull` (this checkout has nothing the
    Manager lacks)", and that pull refused over the detached commit with only --force."""
    p = pushed("proj")
    git(p.laptop, "switch", "-q", "--detach", "HEAD")
    (p.laptop / "tagged-fix.txt").write_text("a fix made on the tag\n")
    git(p.laptop, "add", "tagged-fix.txt")
    git(p.laptop, "commit", "-q", "-m", "a fix on the tag")
    (p.directory / "agent.txt").write_text("the agent's work\n")

    what, ways = refusal(ocm(p.laptop, first))

    assert what.startswith("both sides changed: "), what
    assert "1 commit on a detached HEAD" in what
    follow(ocm, p.laptop, ways[0])
    both_sides_equal(p)
    for side in (p.laptop, p.directory):
        assert (side / "agent.txt").read_text() == "the agent's work\n"
        assert (side / "tagged-fix.txt").read_text() == "a fix made on the tag\n"


def _agent_commits_detached(p: Pushed, name: str) -> str:
    """The agent detaches the Manager's HEAD and commits ``name`` there; returns the commit."""
    git(p.directory, "switch", "-q", "--detach")
    (p.directory / name).write_text(f"the agent's {name}\n")
    git(p.directory, "add", name)
    git(p.directory, "commit", "-q", "-m", f"the agent's {name}")
    return git(p.directory, "rev-parse", "HEAD")


@pytest.mark.parametrize("laptop_edit", [False, True])
def test_a_push_over_the_managers_detached_commit_names_it_and_the_advice_works(
    ocm: Cli, pushed: Callable[..., Pushed], laptop_edit: bool
) -> None:
    """The agent committed on a detached HEAD in the Manager's copy. The push was refused
    at the Manager ("re-run with --force to overwrite it"), the one way forward it named;
    now it names the commit and a way that keeps it: a pull (a forced one, then the stash
    back, when this checkout has work of its own). Then a second detached commit of the
    agent's on top of the first, which the pull brought: a plain pull again (it said this
    checkout's detached HEAD held a commit the Manager lacked, and its advice's merge
    failed: the pull kept no backup)."""
    p = pushed("proj")
    agent = _agent_commits_detached(p, "agent.txt")
    if laptop_edit:
        (p.laptop / "README.md").write_text("laptop edit\n")

    what, ways = refusal(ocm(p.laptop, "push"))

    assert "the Manager's copy of proj has 1 commit on a detached HEAD" in what, what
    assert "its detached HEAD's commits under refs/ocm/backup/" in ways[-1], ways
    if laptop_edit:
        assert what.startswith("both sides changed: "), what
        assert "it switches this checkout to a detached HEAD" in ways[0], ways
    else:
        assert ways[0].startswith("run `ocm pull` to bring them here"), ways
    follow(ocm, p.laptop, ways[0])
    both_sides_equal(p)
    assert git(p.laptop, "rev-parse", "HEAD") == agent
    assert (p.laptop / "agent.txt").read_text() == "the agent's agent.txt\n"
    if laptop_edit:
        assert (p.directory / "README.md").read_text() == "laptop edit\n"

    _agent_commits_detached(p, "more.txt")
    what, ways = refusal(ocm(p.laptop, "push"))
    assert "1 commit on a detached HEAD that this checkout lacks" in what, what
    assert ways[0].startswith("run `ocm pull` to bring them here"), (what, ways)
    follow(ocm, p.laptop, ways[0])
    both_sides_equal(p)
    assert (p.laptop / "more.txt").read_text() == "the agent's more.txt\n"


@pytest.mark.parametrize("unsent_commit", [False, True])
def test_a_push_over_an_agent_on_another_branch_the_advised_sequence_keeps_both(
    ocm: Cli, pushed: Callable[..., Pushed], unsent_commit: bool
) -> None:
    """The agent switched the Manager's copy to a branch of its own and works there
    uncommitted. The pull the advice starts with switches this checkout to that branch and
    leaves main alone: "it keeps your commits under refs/ocm/backup/" and "`git merge` the
    backup ref it prints" were words for a backup no pull makes, and the merge failed."""
    p = pushed("proj")
    git(p.directory, "switch", "-q", "-c", "feature")
    (p.directory / "agent.txt").write_text("the agent's work on feature\n")
    if unsent_commit:
        commit_on_laptop(p, "committed on main\n")
    main = git(p.laptop, "rev-parse", "main")
    (p.laptop / "README.md").write_text("laptop edit\n")

    what, ways = refusal(ocm(p.laptop, "push"))

    assert what.startswith("both sides changed: "), what
    assert "it switches this checkout to feature" in ways[0], ways
    assert ("leaving your commits on main" in ways[0]) == unsent_commit
    follow(ocm, p.laptop, ways[0])
    both_sides_equal(p)
    assert git(p.directory, "branch", "--show-current") == "feature"
    for side in (p.laptop, p.directory):
        assert (side / "agent.txt").read_text() == "the agent's work on feature\n"
        assert (side / "README.md").read_text() == "laptop edit\n"
    assert git(p.laptop, "rev-parse", "main") == main  # its commits stay where they were


@pytest.mark.parametrize("rewrite", ["amend", "reset"])
def test_history_rewritten_since_the_last_push_is_sent_with_force(
    ocm: Cli, pushed: Callable[..., Pushed], rewrite: str
) -> None:
    """After a push, the checkout amends (or resets away) the commit it sent. The push was
    told "both sides changed", and keeping both merged the old commit back in; the
    Manager's commits are this checkout's own, and `ocm push --force` is the way."""
    p = pushed("proj")
    (p.laptop / "more.txt").write_text("one more commit\n")
    git(p.laptop, "add", "more.txt")
    git(p.laptop, "commit", "-q", "-m", "one more")
    assert ocm(p.laptop, "push").returncode == 0
    sent = git(p.laptop, "rev-parse", "HEAD")
    if rewrite == "amend":
        git(p.laptop, "commit", "-q", "--amend", "-m", "the same work, said better")
    else:
        git(p.laptop, "reset", "-q", "--hard", "HEAD~1")

    what, ways = refusal(ocm(p.laptop, "push"))

    assert "this checkout has rewritten those commits since" in what, what
    assert ways == [
        "run `ocm push --force` to send the rewritten ones (the Manager keeps its old main"
        " under refs/ocm/backup/)"
    ]
    follow(ocm, p.laptop, ways[0])
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")
    kept = git(p.directory, "for-each-ref", "--format=%(objectname)", "refs/ocm/backup/")
    assert kept == sent
    both_sides_equal(p)


def test_diverged_commits_and_changes_the_advised_sequence_keeps_everything(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    agent_tip = agent_commits(p)
    laptop_tip = commit_on_laptop(p)
    (p.laptop / "README.md").write_text("laptop edit, not committed\n")

    what, ways = refusal(ocm(p.laptop, "push"))
    assert what.startswith("both sides changed: the Manager's copy of proj has new commits")
    assert "`git merge`" in ways[0] and "`git stash pop`" in ways[0]
    follow(ocm, p.laptop, ways[0])

    for tip in (agent_tip, laptop_tip):
        git(p.directory, "merge-base", "--is-ancestor", tip, "HEAD")  # raises if lost
    assert (p.directory / "agent.txt").read_text() == "committed by an agent\n"
    assert (p.directory / "laptop.txt").read_text() == "committed on the laptop\n"
    assert (p.directory / "README.md").read_text() == "laptop edit, not committed\n"
    both_sides_equal(p)


@pytest.mark.parametrize("local", ["uncommitted", "commit"])
def test_pull_over_local_work_says_push_when_the_manager_has_nothing_newer(
    ocm: Cli, pushed: Callable[..., Pushed], local: str
) -> None:
    p = pushed("proj")
    (p.laptop / "src/app.py").write_text("print('laptop')\n")
    if local == "commit":
        git(p.laptop, "commit", "-q", "-am", "laptop commit")

    what, ways = refusal(ocm(p.laptop, "pull"))
    assert "that the Manager's copy of proj lacks" in what
    assert ways[0].startswith("run `ocm push` to send them (the Manager has nothing newer)")
    follow(ocm, p.laptop, ways[0])
    assert ocm(p.laptop, "pull").returncode == 0  # and pulling is fine from there
    assert (p.laptop / "src/app.py").read_text() == "print('laptop')\n"
    assert (p.directory / "src/app.py").read_text() == "print('laptop')\n"
    both_sides_equal(p)


def test_several_repos_match_push_follows_ocm_use(
    manager_factory: Callable[..., RunningManager],
    tmp_path: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `ocm use` attaches only where the Manager has an OpenCode: the recording stand-in here.
    with RecordingUpstream() as upstream:
        env = stand_in_env(tmp_path / "manager-home")
        ocm = Cli(manager_factory("--opencode-url", upstream.url, env=env))
        p = push_new(ocm, tmp_path / "laptop" / "proj")
        ocm.manager.cli("repo", "add", str(p.laptop), "--name", "proj-copy")  # the same origin
        copy = next(r for r in ocm.repos(p.laptop) if r["name"] == "proj-copy")
        (isolated_env / ".config/opencode-manager/state.json").unlink()  # no repo used yet
        # `ocm use` attaches: a stand-in `opencode` that leaves at once.
        stand_in = tmp_path / "opencode"
        stand_in.write_text('#!/bin/sh\n[ "$1" = --version ] && echo 1.18.33\nexit 0\n')
        stand_in.chmod(0o755)
        monkeypatch.setenv("OCM_OPENCODE_BIN", str(stand_in))
        (p.laptop / "README.md").write_text("for the copy\n")

        what, ways = refusal(ocm(p.laptop, "push"))
        assert "matches 2 Manager repos" in what and f"#{copy['repoId']} proj-copy" in what
        assert ways[0].startswith("pick one with `ocm use <repoId>`")
        assert ways[0].endswith("then run the command again: it takes the last used of them")
        follow(ocm, p.laptop, f"`ocm use {copy['repoId']}`, then `ocm push`")
    copy_dir = ocm.manager.data_dir / "repos" / "proj-copy"
    assert (copy_dir / "README.md").read_text() == "for the copy\n"
    assert (p.directory / "README.md").read_text() != "for the copy\n"


def test_create_with_a_taken_name_follow_name(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    """Two projects in folders of one name: the second names its repo with --name."""
    pushed("proj")
    other = rich_repo(
        ocm.manager.data_dir.parent / "elsewhere" / "proj",
        origin="https://example.invalid/another/proj.git",
    )
    what, ways = refusal(ocm(other, "push", "--create", "--yes"))
    assert what.startswith("The Manager already has a ") and what.endswith(" proj")
    assert ways[0] == "name the new one with `ocm push --create --name <another name>`"
    # A name the Manager would refuse is refused before anything is sent (it came back as
    # the Manager's HTTP 400 once the whole upload had gone).
    for name, problem in [
        ("no/slash", "invalid repo name 'no/slash'; use letters, digits, '.', '_' and '-'"),
        ("0042", "repo name '0042' is all digits, which reads as a repo id; add a letter"),
    ]:
        bad = ocm(other, "push", "--create", "--yes", "--name", name)
        assert (bad.returncode, bad.stderr) == (2, f"ocm: --name: {problem}\n")
    unreachable = subprocess.run(
        ocm_command("push", "--create", "--yes", "--name", "no/slash"),
        cwd=other,
        env={**ocm.env(), "OPENCODE_MANAGER_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 2 and "--name: invalid" in unreachable.stderr
    alone = ocm(other, "push", "--name", "proj-two")
    assert alone.returncode == 2, alone.stderr
    assert alone.stderr.startswith("ocm: --name names the repo --create makes; add --create")
    assert {r["name"] for r in ocm.repos(other)} == {"proj"}
    named = ways[0].replace("<another name>", "proj-two")
    follow(ocm, other, named.replace("--create", "--create --yes"))
    assert {r["name"] for r in ocm.repos(other)} == {"proj", "proj-two"}
    assert (ocm.manager.data_dir / "repos" / "proj-two" / "README.md").exists()
    done = ocm(other, "push")  # found again by its origin, whatever its name
    assert done.returncode == 0 and "ocm: pushed proj-two (#2)" in done.stdout, done.stderr


def test_an_origin_by_another_url_is_named_follow_set_url(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """A teammate's clone over ssh of a repo the Manager has by https: not matched (SPEC §3
    compares origins as written), but named, and its advice makes push and pull find it,
    where `ocm push --create` would have made a second copy."""
    p = pushed("proj")
    teammate = p.laptop.parent.parent / "teammate" / "proj"
    git(p.laptop.parent, "clone", "-q", str(p.laptop), str(teammate))
    git(teammate, "remote", "set-url", "origin", "git@example.invalid:org/proj.git")
    (teammate / "teammate.txt").write_text("the teammate's work\n")
    before = tree_listing(p.directory)
    for command in ("pull", "push"):
        what, ways = refusal(ocm(teammate, command))
        assert what == (
            "no Manager repo matches origin git@example.invalid:org/proj.git, though "
            f"#{p.repo_id} proj (main) has origin https://example.invalid/org/proj.git: the "
            "same repository by another URL, and origins match only as written"
        )
        assert ways == [
            "to push and pull with it from here, make its URL this checkout's origin: "
            "`git remote set-url origin https://example.invalid/org/proj.git`"
        ]
        assert tree_listing(p.directory) == before
    assert (teammate / "teammate.txt").read_text() == "the teammate's work\n"
    follow(ocm, teammate, ways[0])
    done = ocm(teammate, "push")
    assert done.returncode == 0 and f"ocm: pushed proj (#{p.repo_id})" in done.stdout, done.stderr
    assert (p.directory / "teammate.txt").read_text() == "the teammate's work\n"
    assert [r["name"] for r in ocm.repos(teammate)] == ["proj"]


def test_create_with_no_terminal_to_ask_on_needs_yes(ocm: Cli, tmp_path: Path) -> None:
    laptop = rich_repo(tmp_path / "laptop" / "fresh", origin="https://example.invalid/o/fresh.git")
    what, ways = refusal(ocm(laptop, "push", "--create"))
    assert (
        what == "no Manager repo matches this checkout, and creating 'fresh' needs a confirmation"
    )
    assert ways == ["run `ocm push --create --yes` to create it"]
    assert ocm.repos(laptop) == []
    follow(ocm, laptop, ways[0])
    assert [r["name"] for r in ocm.repos(laptop)] == ["fresh"]


def test_create_beside_the_same_repository_by_another_url_says_it_makes_a_second_copy(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """`ocm push --create` from a teammate's ssh clone in a folder of another name (so no
    name is taken): the Manager has the project by https, and what --create would make is a
    second copy of it, whose work would split from the first. Said before anything is made,
    with the command that reaches the first; made only when asked for all the same."""
    p = pushed("proj")
    teammate = p.laptop.parent.parent / "teammate" / "proj-ssh"
    git(p.laptop.parent, "clone", "-q", str(p.laptop), str(teammate))
    git(teammate, "remote", "set-url", "origin", "git@example.invalid:org/proj.git")
    alike = (
        f"#{p.repo_id} proj (main) has origin https://example.invalid/org/proj.git: the same "
        "repository by another URL, and origins match only as written"
    )
    set_url = "`git remote set-url origin https://example.invalid/org/proj.git`"

    what, ways = refusal(ocm(teammate, "push", "--create"))  # no terminal to ask on
    assert what == f"no Manager repo matches this checkout, though {alike}"
    assert ways == [
        f"to push to it, make its URL this checkout's origin: {set_url}",
        "to create 'proj-ssh' all the same, a second copy, run `ocm push --create --yes`",
    ]

    # On a terminal, the question says what a yes makes; no makes nothing.
    controller, terminal = os.openpty()
    try:
        asking = subprocess.Popen(
            ocm_command("push", "--create"),
            cwd=teammate,
            env=ocm.env(),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
    finally:
        os.close(terminal)
    os.write(controller, b"n\n")
    shown = read_until_closed(controller).decode(errors="replace")
    asking.communicate(timeout=120)
    assert asking.returncode == 1, shown
    assert f"ocm: {alike}; to push to it instead, make its URL this checkout's origin: " in shown
    assert "Create 'proj-ssh' all the same, a second copy? [y/N]" in shown
    assert "ocm: nothing pushed" in shown
    assert [r["name"] for r in ocm.repos(teammate)] == ["proj"]

    made = ocm(teammate, "push", "--create", "--yes")
    assert made.returncode == 0, made.stderr
    assert (
        f"ocm: {alike}; making 'proj-ssh' all the same, a second copy (to push to it, make its "
        f"URL this checkout's origin: {set_url})"
    ) in made.stderr
    assert sorted(r["name"] for r in ocm.repos(teammate)) == ["proj", "proj-ssh"]


@pytest.mark.slow
def test_tui_attached_says_since_when_and_both_ways_forward_work(tui_scene: TuiScene) -> None:
    ocm, p = tui_scene.ocm, tui_scene.p
    laptop, directory = p.laptop, p.directory

    # 1. Only a TUI: close it and push again.
    opened = time.time()
    events = tui_scene.attach()
    try:
        head = tui_scene.head()
        assert head["inUse"] is True
        assert opened - 5 <= head["inUseSince"] <= time.time() + 5
        (laptop / "README.md").write_text("laptop edit\n")
        what, ways = refusal(ocm(laptop, "push"))
        clock = time.strftime("%H:%M", time.localtime(head["inUseSince"]))
        assert re.fullmatch(
            rf"a TUI is attached to proj \(since {clock}, (just now|\d+ min ago)\)", what
        ), what
        assert ways[0] == "close it and run `ocm push` again"
        assert (directory / "README.md").read_text() != "laptop edit\n"
    finally:
        events.close()  # "close it"
    assert proctree.wait_until(lambda: tui_scene.head()["inUse"] is False, timeout=30)
    follow(ocm, laptop, ways[0])
    assert (directory / "README.md").read_text() == "laptop edit\n"

    # 2. A TUI and an agent's uncommitted work: --force keeps that work as a stash there.
    events = tui_scene.attach()
    try:
        both_sides_change(p)
        # The pull's way forward ends in a push, which waits for the TUI too.
        _, pull_ways = refusal(ocm(laptop, "pull"))
        assert "close the TUI and run `ocm push`" in pull_ways[0], pull_ways
        what, ways = refusal(ocm(laptop, "push"))
        assert what.startswith("both sides changed: ") and "a TUI is attached to proj" in what
        forced = next(way for way in ways if "`ocm push --force`" in way)
        assert "keeps its uncommitted changes as a stash" in forced
        follow(ocm, laptop, forced.split("(")[0])
    finally:
        events.close()
    assert (directory / "src/app.py").read_text() == "print('laptop')\n"
    # The agent's work, as promised: in the Manager's stash (untracked files included).
    assert git(directory, "show", "stash@{0}:README.md") == "agent edit"
    assert git(directory, "show", "stash@{0}:agent-notes.md") == "agent's untracked file"


def _conflicting_merge(root: Path) -> None:
    """A merge stopped on a conflict in README.md, as `git merge` leaves it."""
    git(root, "checkout", "-q", "-b", "other")
    (root / "README.md").write_text("from the other branch\n")
    git(root, "commit", "-q", "-am", "other")
    git(root, "checkout", "-q", "-")
    (root / "README.md").write_text("from this branch\n")
    git(root, "commit", "-q", "-am", "this")
    merged = subprocess.run(["git", "merge", "other"], cwd=root, capture_output=True, text=True)
    assert merged.returncode == 1 and "CONFLICT" in merged.stdout, merged.stdout


def _git_state(root: Path) -> tuple[object, ...]:
    """The work tree, the index's view of it, the stash and git's merge record."""
    merge_head = root / ".git" / "MERGE_HEAD"
    return (
        tree_listing(root),
        git(root, "status", "--porcelain=v1"),
        git(root, "stash", "list"),
        merge_head.read_text() if merge_head.exists() else None,
    )


@pytest.mark.parametrize("force", [False, True])
def test_a_pull_into_a_merge_in_progress_is_refused_even_forced(
    ocm: Cli, pushed: Callable[..., Pushed], force: bool
) -> None:
    """--force would stash the conflict and switch, leaving MERGE_HEAD behind (or dropped):
    the merge itself would be lost. Nothing is touched; the advice names the way out."""
    p = pushed("proj")
    (p.directory / "agent.txt").write_text("the agent's file\n")  # something to pull
    _conflicting_merge(p.laptop)
    before = _git_state(p.laptop)

    what, ways = refusal(ocm(p.laptop, "pull", *(["--force"] if force else [])))
    assert what == "This checkout is in the middle of a merge"
    assert ways == ["finish it", "abort it (`git merge --abort`), then run the command again"]
    assert _git_state(p.laptop) == before
    assert before[3] is not None  # MERGE_HEAD was there, and still is


def test_a_pull_over_unresolved_conflicts_is_refused(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Conflicts without a merge (a `git stash pop` that conflicted) are refused too."""
    p = pushed("proj")
    (p.directory / "agent.txt").write_text("the agent's file\n")
    (p.laptop / "README.md").write_text("stashed edit\n")
    git(p.laptop, "stash", "-q")
    (p.laptop / "README.md").write_text("committed edit\n")
    git(p.laptop, "commit", "-q", "-am", "edit")
    popped = subprocess.run(["git", "stash", "pop"], cwd=p.laptop, capture_output=True, text=True)
    assert popped.returncode == 1 and "CONFLICT" in popped.stdout, popped.stdout
    before = _git_state(p.laptop)

    what, ways = refusal(ocm(p.laptop, "pull", "--force"))
    assert what == "This checkout has unresolved conflicts (README.md)"
    assert "`git add`" in ways[0]
    assert _git_state(p.laptop) == before
    # Nor is it pushed; and with no merge to abort, the advice names none.
    what, ways = refusal(ocm(p.laptop, "push", "--force"))
    assert what.endswith("has unresolved conflicts") and "`git add`" in ways[0], ways
    assert "abort" not in ways[0]
    assert _git_state(p.laptop) == before


# What a container's output can look like to the developer's account: the path to lock,
# the mode that locks it, and the reason the refusal gives.
UNREADABLE = {
    "a file": ("from-a-container.txt", 0, 'open("from-a-container.txt"): Permission denied'),
    "a folder": ("pgdata", 0, "could not open directory 'pgdata/': Permission denied"),
    "a folder it may list, not enter": ("pgdata", 0o644, "pgdata/PG_VERSION: Permission denied"),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_what_this_user_may_not_read_is_named_and_nothing_changes(
    ocm: Cli, pushed: Callable[..., Pushed], kind: str
) -> None:
    """What this user may not read (a container's output, owned by root) cannot be in a
    snapshot, and left out, the other side would delete its copy (a folder's files were
    deleted on the Manager; a file made push say "is a merge or rebase in progress?"; a
    folder it may list but not enter ended in "unexpected error (PermissionError)"). Push
    and pull, forced or not, name it and change nothing; made readable, the push works."""
    p = pushed("proj")
    name, mode, reason = UNREADABLE[kind]
    locked = p.laptop / name
    if name == "pgdata":
        locked.mkdir()
        (locked / "PG_VERSION").write_text("16\n")
        if mode:  # tracked: git lists it from the index, ocm then looks at it
            git(p.laptop, "add", "pgdata")
            git(p.laptop, "commit", "-q", "-m", "pgdata")
        assert ocm(p.laptop, "push").returncode == 0
    else:
        locked.write_text("written by a container\n")
    laptop_before, manager_before = _git_state(p.laptop), _git_state(p.directory)
    locked.chmod(mode)
    try:
        for command in (["push"], ["push", "--force"], ["pull"], ["pull", "--force"]):
            what, ways = refusal(ocm.bound_by_file_modes(p.laptop, *command))
            assert what == f"cannot read part of {p.laptop} ({reason})", (command, what)
            assert ways[0].startswith("make it readable") and ".gitignore" in ways[-1], ways
    finally:
        locked.chmod(0o755 if locked.is_dir() else 0o644)
    assert _git_state(p.laptop) == laptop_before
    assert _git_state(p.directory) == manager_before

    (p.laptop / "README.md").write_text("sent once all is readable\n")
    done = ocm.bound_by_file_modes(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert tree_listing(p.directory) == tree_listing(p.laptop)


def test_what_the_manager_may_not_read_in_its_copy_says_whose_it_is_to_fix(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """A folder an agent's container left in the Manager's copy, owned by root: the refusal
    names the Manager's copy (it named a path on the Manager as if it were this checkout,
    with advice only whoever runs the Manager can follow), and nothing changes; once git
    ignores it there, the pull works and the folder stays on the Manager."""
    ocm = Cli(manager_factory("--no-opencode", bound=True))  # as the service's own account
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    locked = p.directory / "pgdata"
    locked.mkdir()
    (locked / "PG_VERSION").write_text("16\n")
    (p.directory / "README.md").write_text("the agent's edit\n")
    laptop_before, manager_before = _git_state(p.laptop), _git_state(p.directory)
    locked.chmod(0)
    try:
        for command in (["push"], ["push", "--force"], ["pull"], ["pull", "--force"]):
            what, ways = refusal(ocm(p.laptop, *command))
            assert what == (
                f"The Manager's copy of proj at {p.directory} has a part the Manager may not"
                " read (could not open directory 'pgdata/': Permission denied)"
            ), (command, what)
            assert ways[0].startswith("whoever runs the Manager makes it readable"), ways
            assert ".git/info/exclude" in ways[-1], ways
    finally:
        locked.chmod(0o700)
    assert _git_state(p.laptop) == laptop_before
    assert _git_state(p.directory) == manager_before

    with (p.directory / ".git/info/exclude").open("a") as exclude:
        exclude.write("pgdata/\n")
    locked.chmod(0)
    try:
        done = ocm(p.laptop, "pull")
    finally:
        locked.chmod(0o700)
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "README.md").read_text() == "the agent's edit\n"
    assert not (p.laptop / "pgdata").exists()
    assert (locked / "PG_VERSION").read_text() == "16\n"


def test_a_push_into_a_manager_folder_it_may_not_write_is_undone_and_says_whose(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The Manager's switch meets a folder of its copy it may not write: undone, and the
    advice is for whoever runs the Manager (it said "make it writable" to the laptop)."""
    ocm = Cli(manager_factory("--no-opencode", bound=True))  # as the service's own account
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    (p.laptop / "pgdata").mkdir()
    (p.laptop / "pgdata/PG_VERSION").write_text("15\n")
    assert ocm(p.laptop, "push").returncode == 0
    (p.laptop / "pgdata/PG_VERSION").write_text("16\n")
    manager_before = _git_state(p.directory)
    (p.directory / "pgdata").chmod(0o555)
    try:
        what, ways = refusal(ocm(p.laptop, "push"))
    finally:
        (p.directory / "pgdata").chmod(0o755)
    named = "The Manager's copy of proj may not be written at pgdata/PG_VERSION (Permission denied)"
    assert what == named, what
    assert ways == [
        "nothing was changed; whoever runs the Manager makes it writable there, then run the"
        " command again"
    ]
    assert _git_state(p.directory) == manager_before
    assert (p.directory / "pgdata/PG_VERSION").read_text() == "15\n"

    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "pgdata/PG_VERSION").read_text() == "16\n"


def test_a_pull_into_a_folder_this_user_may_not_write_is_undone_and_named(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The switch meets a folder it may not write halfway: what it did is undone, and the
    line names the file (it said "the transfer ... broke off ... run `ocm pull` again",
    which failed the same way)."""
    p = pushed("proj")
    (p.laptop / "pgdata").mkdir()
    (p.laptop / "pgdata/PG_VERSION").write_text("15\n")
    assert ocm(p.laptop, "push").returncode == 0
    (p.directory / "README.md").write_text("the agent's edit\n")  # written before the folder
    (p.directory / "pgdata/PG_VERSION").write_text("16\n")
    before = _git_state(p.laptop)
    (p.laptop / "pgdata").chmod(0o555)
    try:
        what, ways = refusal(ocm.bound_by_file_modes(p.laptop, "pull"))
    finally:
        (p.laptop / "pgdata").chmod(0o755)
    named = "This checkout may not be written at pgdata/PG_VERSION (Permission denied)"
    assert what == named, what
    assert ways == ["nothing was changed; make it writable, then run the command again"]
    assert _git_state(p.laptop) == before
    assert not list((p.laptop / ".git" / STAGING_NAME).iterdir())

    done = ocm.bound_by_file_modes(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "pgdata/PG_VERSION").read_text() == "16\n"
    assert (p.laptop / "README.md").read_text() == "the agent's edit\n"


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_git_folder_this_user_may_not_write_is_named(
    ocm: Cli, pushed: Callable[..., Pushed], command: str
) -> None:
    """``.git`` left read-only (or owned by root): one line naming the file ocm could not
    make there, not "unexpected error (PermissionError)" nor "the transfer broke off"."""
    p = pushed("proj")
    (p.laptop / "README.md").write_text("a change\n")
    (p.directory / "agent.txt").write_text("the agent's file\n")
    before = _git_state(p.laptop)
    (p.laptop / ".git").chmod(0o555)
    try:
        done = ocm.bound_by_file_modes(p.laptop, command)
    finally:
        (p.laptop / ".git").chmod(0o755)
    what, ways = refusal(done)
    assert what.startswith(f"{p.laptop}/.git/") and what.endswith(": Permission denied"), what
    assert ways[-1].endswith("then run it again" if command == "push" else "`ocm pull` again")
    assert _git_state(p.laptop) == before


def test_an_object_store_this_user_may_not_write_gets_gits_own_reason(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Object folders left owned by root (a `sudo git ...` once): git's well-known line,
    not "cannot read" (the files are readable) nor "is a merge in progress?"."""
    p = pushed("proj")
    (p.laptop / "README.md").write_text("a change to hash\n")
    folders = [p.laptop / ".git/objects", *(p.laptop / ".git/objects").iterdir()]
    before = _git_state(p.laptop)
    for folder in folders:
        folder.chmod(0o555)
    try:
        done = ocm.bound_by_file_modes(p.laptop, "push")
    finally:
        for folder in folders:
            folder.chmod(0o755)
    what, ways = refusal(done)
    assert what == (
        f"git update-index failed in {p.laptop}: insufficient permission for adding an "
        "object to repository database .git/objects"
    )
    assert ways == ["fix that and run the command again"]
    assert _git_state(p.laptop) == before


def test_a_push_into_a_manager_copy_in_the_middle_of_a_merge_is_refused(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    _conflicting_merge(p.directory)
    before = _git_state(p.directory)
    (p.laptop / "src/app.py").write_text("print('laptop')\n")

    done = ocm(p.laptop, "push", "--force")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "ocm: The Manager's copy of proj is in the middle of a merge; finish it, or abort it "
        "(`git merge --abort`), then run the command again"
    )
    assert _git_state(p.directory) == before


def test_a_fresh_clone_behind_the_managers_commits_pulls_them_and_one_ahead_is_refused(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """A checkout that never transferred lacks the Manager's new commits, so it cannot tell
    alone whether its own tip is among them: the Manager says so (``mergedTip``). A second
    laptop's fresh clone gets an agent's commit at once, not "both sides changed"."""
    p = pushed("proj")
    agent_tip = agent_commits(p)
    origin = git(p.laptop, "remote", "get-url", "origin")
    clones = {}
    for name in ("behind", "ahead"):
        clone = tmp_path / "second-laptop" / name / "proj"
        git(tmp_path, "clone", "-q", str(p.laptop), str(clone))
        git(clone, "remote", "set-url", "origin", origin)
        clones[name] = clone
    (clones["ahead"] / "mine.txt").write_text("a commit of this laptop's own\n")
    git(clones["ahead"], "add", "mine.txt")
    git(clones["ahead"], "commit", "-q", "-m", "mine")
    ahead_tip = git(clones["ahead"], "rev-parse", "HEAD")

    done = ocm(clones["behind"], "pull")
    assert done.returncode == 0, done.stderr
    assert git(clones["behind"], "rev-parse", "HEAD") == agent_tip
    assert (clones["behind"] / "agent.txt").read_text() == "committed by an agent\n"

    what, _ = refusal(ocm(clones["ahead"], "pull"))
    assert what.startswith("both sides changed: this checkout has new commits on main")
    assert git(clones["ahead"], "rev-parse", "HEAD") == ahead_tip
    assert git(p.directory, "rev-parse", "HEAD") == agent_tip


def test_a_pull_from_a_manager_copy_with_unresolved_conflicts_says_so(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """An agent's merge stopped on a conflict in the Manager's copy: the pull was answered
    with an HTTP 500 and "check the Manager's log"."""
    p = pushed("proj")
    git(p.directory, "switch", "-q", "-c", "side")
    (p.directory / "README.md").write_text("on side\n")
    git(p.directory, "commit", "-q", "-am", "side")
    git(p.directory, "switch", "-q", "main")
    (p.directory / "README.md").write_text("on main\n")
    git(p.directory, "commit", "-q", "-am", "main")
    merged = subprocess.run(["git", "merge", "side"], cwd=p.directory, capture_output=True)
    assert merged.returncode != 0
    before = tree_listing(p.laptop)

    done = ocm(p.laptop, "pull")

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "has unresolved conflicts" in done.stderr and "HTTP 500" not in done.stderr
    assert tree_listing(p.laptop) == before


@pytest.mark.parametrize("force", [False, True])
def test_a_push_over_a_folder_of_ignored_files_says_where_and_force_is_no_way(
    ocm: Cli, tmp_path: Path, force: bool
) -> None:
    """The push turns folder d into a file; on the Manager, d holds a file it ignores. The
    refusal said "re-run with --force to overwrite it", which refused the same way."""
    laptop = push_new(ocm, tmp_path / "laptop" / "proj").laptop
    (laptop / ".gitignore").write_text("*.log\n")
    (laptop / "d").mkdir()
    (laptop / "d" / "keep.txt").write_text("tracked\n")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "d, and ignored logs")
    assert ocm(laptop, "push").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "proj"
    (manager_copy / "d" / "build.log").write_text("the agent's build output\n")
    git(laptop, "rm", "-q", "-r", "d")
    (laptop / "d").write_text("now a file\n")
    git(laptop, "add", "d")
    git(laptop, "commit", "-q", "-m", "d is a file")
    before = tree_listing(manager_copy)

    what, ways = refusal(ocm(laptop, "push", *(["--force"] if force else [])))

    assert what == (
        "The Manager's copy of proj has files it ignores in d, which an incoming file would replace"
    ), what
    assert ways[0].startswith("nothing was changed; move d away there"), ways
    assert tree_listing(manager_copy) == before
    (manager_copy / "d" / "build.log").unlink()
    assert ocm(laptop, "push").returncode == 0
    assert (manager_copy / "d").read_text() == "now a file\n"
