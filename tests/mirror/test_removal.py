"""Removing a repo while a push or pull of it runs: the removal waits its turn."""

from __future__ import annotations

from collections.abc import Callable

from ocm.mirror.receive import repo_lock
from tests.mirror.conftest import Pushed
from tests.mirror.helpers import tree_listing
from tests.support.processes import Cli


def test_repo_remove_refuses_while_a_transfer_holds_the_repo(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    before = tree_listing(p.directory)
    # What a push does while it switches the tree, and a pull while it streams.
    with repo_lock(p.directory):
        done = ocm.manager.cli("repo", "remove", "proj", "--delete-files", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "ocm-manager: a push or pull of proj is in progress; remove it once that has finished"
    )
    assert tree_listing(p.directory) == before
    assert [r["name"] for r in ocm.repos(p.laptop)] == ["proj"]

    done = ocm.manager.cli("repo", "remove", "proj", "--delete-files")
    assert "removed repo" in done.stdout
    assert not p.directory.exists()


def test_create_over_the_folder_a_removed_repo_left_says_so(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """It said "already has a directory for proj" and to give this checkout the origin of a
    repo `ocm list --json` showed no trace of."""
    p = pushed("proj")
    ocm.manager.cli("repo", "remove", "proj")  # its files stay
    assert p.directory.exists() and ocm.repos(p.laptop) == []

    done = ocm(p.laptop, "push", "--create", "--yes")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "keeps a folder named proj among its repos, though no repo of that name" in line
    assert line.endswith(
        "; name the new one with `ocm push --create --name <another name>`, or ask whoever runs"
        " the Manager to move that folder away (or register it again with `ocm-manager repo"
        " add`)"
    ), line
    assert "origin" not in line

    done = ocm(p.laptop, "push", "--create", "--yes", "--name", "proj-again")
    assert done.returncode == 0, done.stderr
