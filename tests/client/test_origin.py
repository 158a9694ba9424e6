"""Origin normalisation and the resolution rules as plain functions (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocm.api import Workspace
from ocm.errors import OcmError
from ocm.origin import hide_credentials, normalise_origin, repository_address
from ocm.resolve import Checkout, find_repo, repos_for_origin, resolve_target
from ocm.state import State


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://github.com/acme/widget", "https://github.com/acme/widget"),
        ("https://github.com/acme/widget.git", "https://github.com/acme/widget"),
        ("https://github.com/acme/widget/", "https://github.com/acme/widget"),
        ("https://github.com/acme/widget.git/", "https://github.com/acme/widget"),
        ("  HTTPS://GitHub.com/Acme/Widget.GIT  ", "https://github.com/acme/widget"),
        ("git@github.com:acme/widget.git", "ssh://git@github.com/acme/widget"),
        ("git@github.com:/acme/widget", "ssh://git@github.com/acme/widget"),
        ("ssh://git@github.com/acme/widget.git", "ssh://git@github.com/acme/widget"),
        ("github.com:acme/widget", "ssh://github.com/acme/widget"),
        ("/srv/git/widget.git", "/srv/git/widget"),
        ("./relative:path", "./relative:path"),
        # Credentials say who fetches, not what: the Manager stores origins without them.
        ("https://alice:s3cret@github.com/acme/widget.git", "https://github.com/acme/widget"),
        ("https://ghp_token@github.com/acme/widget", "https://github.com/acme/widget"),
        ("ssh://git:s3cret@github.com/acme/widget", "ssh://git@github.com/acme/widget"),
        (
            "https://github.com/acme/widget.git?access_token=s3cret",
            "https://github.com/acme/widget",
        ),
        ("git+ssh://git:s3cret@github.com/acme/widget", "git+ssh://git@github.com/acme/widget"),
    ],
)
def test_normalise_origin(raw: str, expected: str) -> None:
    assert normalise_origin(raw) == expected


def same_origin(left: str, right: str) -> bool:
    return normalise_origin(left) == normalise_origin(right)


def test_same_origin_across_forms_but_not_across_hosts() -> None:
    assert same_origin("git@GitHub.com:Acme/Widget.git", "ssh://git@github.com/acme/widget/")
    assert not same_origin("git@github.com:acme/widget", "https://github.com/acme/widget")
    assert not same_origin("git@github.com:acme/widget", "git@gitlab.com:acme/widget")
    assert repos_for_origin(None, [ws(1, "Widget", "https://github.com/acme/widget")]) == []


@pytest.mark.parametrize(
    ("one", "another", "same"),
    [
        ("git@GitHub.com:Acme/Widget.git", "https://github.com/acme/widget/", True),
        ("ssh://git@github.com:22/acme/widget", "http://github.com/acme/widget", True),
        ("https://token@github.com/acme/widget", "git://github.com/acme/widget.git", True),
        ("ssh://git@[::1]:2222/srv/widget", "https://[::1]/srv/widget", True),
        ("file:///srv/git/widget.git", "/srv/git/widget", True),
        ("https://git.example.com/team/my%20app", "git@git.example.com:team/my app", True),
        ("https://git.example.com/%D0%BA%D0%BE%D0%B4", "https://git.example.com/код", True),
        ("git@github.com:acme/widget", "https://gitlab.com/acme/widget", False),
        ("git@github.com:acme/widget", "https://github.com/acme/widget-two", False),
        ("git@github.com:acme/widget", "https://github.com/other/widget", False),
        ("https://github.com/acme/widget", "/acme/widget", False),
    ],
)
def test_repository_address_is_host_and_path_whatever_the_protocol(
    one: str, another: str, same: bool
) -> None:
    assert (repository_address(one) == repository_address(another)) is same


def ws(repo_id: int, name: str, origin: str | None = None) -> Workspace:
    return Workspace(repo_id, name, "main", "ready", f"/srv/repos/{name}", origin)


REPOS = [
    ws(1, "Widget", "git@github.com:acme/widget.git"),
    ws(2, "gadget"),
    ws(12, "1"),
    ws(3, "Twin", "https://x.test/twin"),
    ws(4, "twin", "https://x.test/twin.git"),
]


def test_find_repo_order_id_then_exact_then_case_insensitive() -> None:
    assert find_repo(REPOS, "2").name == "gadget"
    assert find_repo(REPOS, "1").repo_id == 1  # the id wins over the repo named "1"
    assert find_repo(REPOS, "12").name == "1"
    assert find_repo(REPOS, "widget").repo_id == 1
    assert find_repo(REPOS, "twin").repo_id == 4  # exact beats case-insensitive
    assert find_repo(REPOS, "Twin").repo_id == 3


def test_find_repo_errors_are_one_line_with_advice() -> None:
    with pytest.raises(OcmError, match=r"no ready repo 'nope'.*; run `ocm list`"):
        find_repo(REPOS, "nope")
    with pytest.raises(OcmError, match=r"matches several repos: #3 Twin.*#4 twin.*ocm use 3"):
        find_repo(REPOS, "TWIN")


def test_resolve_rules() -> None:
    here = Checkout(Path("/work/x"), "ssh://git@github.com/Acme/Widget")
    assert resolve_target(here, REPOS, State()).workspace.repo_id == 1
    assert resolve_target(here, REPOS, State(last_repo_id=2)).workspace.repo_id == 1
    twin = Checkout(Path("/work/t"), "https://x.test/TWIN/")
    with pytest.raises(OcmError, match=r"matches 2 Manager repos.*ocm use <repoId>"):
        resolve_target(twin, REPOS, State(last_repo_id=2))
    other = Checkout(Path("/work/o"), "https://elsewhere.test/o")
    fallback = resolve_target(other, REPOS, State(last_repo_id=2)).reason
    assert fallback == "last used; /work/o matches no Manager repo"
    assert resolve_target(None, REPOS, State(last_repo_id=2)).reason == "last used"
    assert resolve_target(None, REPOS, State(last_repo_id=2)).workspace.name == "gadget"
    with pytest.raises(
        OcmError,
        match=r"not in a git repo and no repo was used before; run "
        r"`ocm list`, then `ocm use <repoId>`",
    ):
        resolve_target(None, REPOS, State())
    with pytest.raises(OcmError, match=r"no Manager repo has origin https://elsewhere"):
        resolve_target(other, REPOS, State())
    with pytest.raises(OcmError, match=r"last used repo #99 gone is not ready"):
        resolve_target(None, REPOS, State(last_repo_id=99, last_repo_name="gone"))


def test_a_ready_repo_without_a_branch_shows_a_detached_head() -> None:
    detached = Workspace(5, "proj", "", "ready", "/srv/proj", None)
    assert detached.branch_label == "detached HEAD"
    assert detached._replace(branch="main").branch_label == "main"
    assert detached._replace(status="cloning").branch_label == ""


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("url=https://alice:s3cret@h.test/x", "url=https://alice:***@h.test/x"),
        # A scheme starts at a letter: what comes before it in the same run stays.
        ("1https://tok@h.test/x", "1https://***@h.test/x"),
        ("+.-git+ssh://git:s3cret@h.test/x", "+.-git+ssh://git:***@h.test/x"),
        ("a https://h.test/x?token=s3cret#top b", "a https://h.test/x?***#top b"),
        ("https://h.test/a#https://h.test/b?token=s3cret", "https://h.test/a#https://h.test/b?***"),
        (
            "see https://h.test/x and http://h.test/y?k=v",
            "see https://h.test/x and http://h.test/y?***",
        ),
    ],
)
def test_hide_credentials_wherever_a_url_starts(text: str, hidden: str) -> None:
    assert hide_credentials(text) == hidden
