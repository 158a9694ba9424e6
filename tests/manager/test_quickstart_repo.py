"""The quick start's choice of the repo to open (``manager.checkout_repo``) and its options,
with the commands ``scripts/quickstart`` runs: the choice, then ``ocm-manager repo add``
under the name it gave, on the default data dir of the test's home.

Two checkouts in folders of one name (``/x/demo``, ``/y/demo``) are two repos: the second
quick start attached to the first one's without a word."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.install.conftest import CHECKOUT
from tests.support.git import git, make_repo
from tests.support.processes import run_manager_cli


def quickstart_registers(checkout: Path) -> tuple[str, str]:
    """What the quick start does for ``checkout`` before the login: the chosen name (and
    the repo added under it when the choice was to add), and what it said."""
    choice = subprocess.run(
        [sys.executable, "-m", "manager.checkout_repo", str(checkout), checkout.name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    action, name = choice.stdout.split()
    if action == "add":
        run_manager_cli("repo", "add", str(checkout), "--name", name)
    return name, choice.stderr


def registered() -> set[str]:
    listed = run_manager_cli("repo", "list").stdout.splitlines()[1:]  # under the header
    return {line.split()[1] for line in listed}


def test_two_checkouts_in_folders_of_one_name_are_two_repos(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "x" / "demo")
    second = make_repo(tmp_path / "y" / "demo")

    assert quickstart_registers(first) == ("demo", "")
    name, said = quickstart_registers(second)
    assert name == "demo-2"
    assert said == (
        "quickstart: the name demo is taken on the Manager by another checkout's repo (or a"
        f" folder left there); registering {second} as demo-2\n"
    )
    assert registered() == {"demo", "demo-2"}
    # Each run again finds its own, and the TUI opens there.
    assert quickstart_registers(first) == ("demo", "")
    assert quickstart_registers(second) == (
        "demo-2",
        f"quickstart: {second} is the Manager's repo demo-2; using it\n",
    )
    assert registered() == {"demo", "demo-2"}


def test_a_checkout_with_the_registered_origin_is_that_repo(tmp_path: Path) -> None:
    """Another clone of the same project is the repo `ocm` matches it to: reused, as any
    name; a clone of another project in a folder of that name is not."""
    first = make_repo(tmp_path / "x" / "demo", origin="git@github.com:acme/demo.git")
    assert quickstart_registers(first) == ("demo", "")
    clone = make_repo(tmp_path / "y" / "app", origin="https://user@github.com/acme/demo")
    # By another scheme it is another origin, as ocm matches them (SPEC §3).
    assert quickstart_registers(clone)[0] == "app"
    same = make_repo(tmp_path / "z" / "demo-copy", origin="git@GitHub.com:Acme/demo")
    name, said = quickstart_registers(same)
    assert name == "demo"
    assert said == f"quickstart: {same} is the Manager's repo demo; using it\n"
    other = make_repo(tmp_path / "w" / "demo", origin="git@github.com:acme/other-demo.git")
    assert quickstart_registers(other)[0] == "demo-2"


def test_a_checkout_given_a_remote_after_its_quick_start_is_still_its_repo(
    tmp_path: Path,
) -> None:
    """Registered without origin (the repo's origin is the folder's path), then given one
    (a first `git push` to GitHub): the quick start run again opens the same repo, as `ocm
    push` in the checkout takes it, rather than register a second copy."""
    first = make_repo(tmp_path / "x" / "demo")
    assert quickstart_registers(first) == ("demo", "")
    git(first, "remote", "add", "origin", "https://github.com/acme/demo.git")
    assert quickstart_registers(first) == ("demo", "")
    assert registered() == {"demo"}


def test_a_folder_whose_git_was_made_anew_is_another_repo(tmp_path: Path) -> None:
    """The repo added from this folder has none of the project now there (its `.git` made
    anew): that copy is another project's, so this one is registered beside it."""
    first = make_repo(tmp_path / "x" / "demo")
    assert quickstart_registers(first) == ("demo", "")
    shutil.rmtree(first / ".git")
    make_repo(first, files={"other.txt": "another project\n"})
    assert quickstart_registers(first)[0] == "demo-2"
    assert registered() == {"demo", "demo-2"}
    assert quickstart_registers(first)[0] == "demo-2"  # and found again


def test_a_folder_a_removed_repo_left_is_not_taken(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "x" / "demo")
    quickstart_registers(first)
    run_manager_cli("repo", "remove", "demo")  # its files stay on the Manager
    second = make_repo(tmp_path / "y" / "demo")
    assert quickstart_registers(second)[0] == "demo-2"


def test_help_and_an_unknown_option_are_answered_before_anything_runs(
    git_repo: Callable[..., Path],
) -> None:
    """`--help` was "--help is not inside a git repo", even inside one."""
    inside = git_repo("project")

    def quickstart(option: str) -> subprocess.CompletedProcess[str]:
        script = str(CHECKOUT / "scripts" / "quickstart")
        return subprocess.run(
            [script, option], cwd=inside, capture_output=True, text=True, timeout=60
        )

    shown = quickstart("--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: scripts/quickstart [path/to/a/git/repo]")
    assert "scripts/quickstart --stop" in shown.stdout and shown.stderr == ""
    bogus = quickstart("--bogus")
    assert bogus.returncode == 1
    assert bogus.stderr == ("quickstart: unknown option --bogus; see `scripts/quickstart --help`\n")
