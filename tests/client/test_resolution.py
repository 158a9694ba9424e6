"""Bare ``ocm`` against a real Manager: which repo it attaches to, from real git checkouts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import AddedRepo, Recorder, assert_one_error, run_ocm
from tests.support.processes import RunningManager

# (origin the Manager repo's source has, origin the laptop checkout has): same repo.
SAME_REPO_FORMS = [
    ("https://github.com/acme/one.git", "https://github.com/acme/one"),
    ("https://github.com/acme/two", "https://GitHub.com/Acme/Two.git/"),
    ("git@github.com:acme/three.git", "ssh://git@github.com/acme/three"),
    ("ssh://git@example.com/team/four.git", "git@example.com:team/four"),
    ("git@Example.com:Team/Five", "git@example.com:team/five.git"),
]


def test_rule1_origin_matches_exactly_one_repo_in_every_url_form(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
) -> None:
    added = [
        add_repo(f"repo{i}", origin=manager_side)
        for i, (manager_side, _) in enumerate(SAME_REPO_FORMS)
    ]
    for i, (_, laptop_side) in enumerate(SAME_REPO_FORMS):
        checkout = git_repo(f"laptop{i}", origin=laptop_side)
        recorder.record.unlink(missing_ok=True)
        result = run_ocm(cwd=checkout)
        assert result.returncode == 0, result.stderr
        assert recorder.attached_dir() == added[i].directory, laptop_side
        assert f"#{added[i].repo_id} repo{i}" in result.stderr


def test_rule1_works_from_a_subdirectory_and_wins_over_the_last_repo(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    target = add_repo("target", origin="git@github.com:acme/target.git")
    other = add_repo("other", origin="https://github.com/acme/other")
    assert run_ocm("use", str(other.repo_id)).returncode == 0
    checkout = git_repo(
        "laptop", origin="https://github.com/acme/target", files={"src/deep/file.py": "x = 1\n"}
    )
    # The origin rule compares https with ssh as different: this checkout must NOT match
    # "target" (ssh), so it falls back to the last repo.
    assert run_ocm(cwd=checkout / "src" / "deep").returncode == 0
    assert recorder.attached_dir() == other.directory
    ssh_checkout = git_repo(
        "laptop-ssh",
        origin="ssh://git@github.com/acme/target",
        files={"src/deep/file.py": "x = 1\n"},
    )
    result = run_ocm(cwd=ssh_checkout / "src" / "deep")
    assert result.returncode == 0, result.stderr
    assert recorder.attached_dir() == target.directory
    state = json.loads((tmp_path / "home/.config/opencode-manager/state.json").read_text())
    assert state["lastRepoId"] == target.repo_id
    assert state["lastRepoDir"] == target.directory


def test_rule2_several_matches_fail_and_list_them(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    first = add_repo("dup-a", origin="git@github.com:acme/dup.git")
    second = add_repo("dup-b", origin="ssh://git@github.com/ACME/dup/")
    add_repo("unrelated", origin="git@github.com:acme/unrelated.git")
    checkout = git_repo("laptop", origin="git@github.com:acme/dup")
    state_before = (tmp_path / "home/.config/opencode-manager/state.json").read_bytes()
    result = run_ocm(cwd=checkout)
    line = assert_one_error(
        result, 1, f"#{first.repo_id} dup-a", f"#{second.repo_id} dup-b", "ocm use"
    )
    assert "unrelated" not in line
    assert not recorder.called()
    assert (tmp_path / "home/.config/opencode-manager/state.json").read_bytes() == state_before


def test_an_origin_by_another_url_is_named_and_the_advice_works(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
) -> None:
    """A clone over ssh of a repo the Manager has by https matches nothing (rule 4, then
    rule 3), but each line names that repo, and following its advice leads to rule 1."""
    widget = add_repo("widget", origin="https://github.com/acme/widget.git")
    add_repo("gadget", origin="https://github.com/acme/gadget.git")
    checkout = git_repo("widget", origin="git@github.com:Acme/widget")
    named = f"#{widget.repo_id} widget (main) has origin https://github.com/acme/widget.git"
    line = assert_one_error(
        run_ocm(cwd=checkout),
        1,
        "no Manager repo has origin git@github.com:Acme/widget and no repo was used before, "
        f"though {named}: the same repository by another URL",
        f"; attach to it with `ocm use {widget.repo_id}`, and for `ocm push` and `ocm pull` "
        "make its URL this checkout's origin: "
        "`git remote set-url origin https://github.com/acme/widget.git`",
    )
    assert "gadget" not in line and "--create" not in line
    assert not recorder.called()

    used = run_ocm("use", str(widget.repo_id), cwd=checkout)
    assert used.returncode == 0, used.stderr
    again = run_ocm(cwd=checkout)
    assert again.returncode == 0, again.stderr
    assert f"[last used; {checkout} matches no Manager repo, though {named}" in again.stderr

    set_url = line.rpartition("`git ")[2].rstrip("`").split()
    subprocess.run(["git", *set_url], cwd=checkout, check=True)
    matched = run_ocm(cwd=checkout)
    assert matched.returncode == 0, matched.stderr
    assert "[origin https://github.com/acme/widget.git]" in matched.stderr, matched.stderr
    assert recorder.attached_dir() == widget.directory


def test_a_token_in_the_checkouts_origin_is_never_shown(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
) -> None:
    """An origin may carry a forge's token (`https://user:token@host/x`), and what ocm prints
    may end up in a CI log: every line that names the origin shows it as ***."""
    add_repo("widget", origin="https://github.com/acme/widget.git")
    unmatched = git_repo("unmatched", origin="https://ghp_S3cret@github.com/acme/other.git")
    for command in ([], ["push"], ["pull"]):  # bare ocm first: no repo was used before
        line = assert_one_error(run_ocm(*command, cwd=unmatched), 1, "no Manager repo")
        assert "origin https://***@github.com/acme/other.git" in line, line
        assert "S3cret" not in line
    matched = git_repo("matched", origin="https://bot:ghp_S3cret@github.com/acme/widget.git")
    attached = run_ocm(cwd=matched)
    assert attached.returncode == 0, attached.stderr
    assert "[origin https://bot:***@github.com/acme/widget.git]" in attached.stderr
    assert "S3cret" not in attached.stdout + attached.stderr


def unmatched_cwd(where: str, tmp_path: Path, git_repo: Callable[..., Path]) -> Path:
    """A directory no registered repo matches: not a repo, a repo without origin, or one
    whose origin the Manager does not know."""
    if where == "outside":
        cwd = tmp_path / "plain"
        cwd.mkdir(exist_ok=True)
        return cwd
    if where == "no-origin":
        return git_repo("no-origin")
    return git_repo("unmatched", origin="https://github.com/acme/nope")


@pytest.mark.parametrize("where", ["outside", "no-origin", "unmatched-origin"])
def test_rule3_falls_back_to_the_last_repo(
    where: str,
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    last = add_repo("last", origin="https://github.com/acme/last")
    add_repo("another", origin="https://github.com/acme/another")
    used = run_ocm("use", "LAST")  # case-insensitive name
    assert used.returncode == 0, used.stderr
    recorder.record.unlink()
    cwd = unmatched_cwd(where, tmp_path, git_repo)
    result = run_ocm(cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert recorder.attached_dir() == last.directory
    assert "last used" in result.stderr
    # A checkout here that is not the project the TUI opens is named.
    assert ("matches no Manager repo" in result.stderr) == (where != "outside"), result.stderr


@pytest.mark.parametrize("where", ["outside", "no-origin", "unmatched-origin"])
def test_rule4_no_match_and_no_last_repo_fails(
    where: str,
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    add_repo("lonely", origin="https://github.com/acme/lonely")
    cwd = unmatched_cwd(where, tmp_path, git_repo)
    result = run_ocm(cwd=cwd)
    line = assert_one_error(
        result, 1, "no repo was used before", "`ocm list`, then `ocm use <repoId>`"
    )
    # Standing in a project the Manager lacks, the first way on is to put it there.
    assert ("put this checkout on the Manager with `ocm push --create`, or" in line) == (
        where != "outside"
    ), line
    assert not recorder.called()


def test_last_repo_removed_on_the_manager_is_reported(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    gone = add_repo("gone")
    assert run_ocm("use", "gone").returncode == 0
    login.cli("repo", "remove", "gone")
    recorder.record.unlink()
    (tmp_path / "plain").mkdir()
    result = run_ocm(cwd=tmp_path / "plain")
    assert_one_error(result, 1, f"#{gone.repo_id} gone is not ready", "ocm list")
    assert not recorder.called()
