"""A laptop whose file system folds case (macOS' and Windows' default) and Unicode forms (a
Mac's) pulling what an agent did on the Manager's Linux copy, where ``README.md`` and
``readme.md`` are two files, and so are ``café.md`` with ``é`` as one code point (NFC) and
as ``e`` and a combining accent (NFD).

The laptop's checkout lives on :mod:`tests.support.casefold_fs`, which treats names as
those systems do; the Manager's copy on the plain folder it always has."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocm.mirror import swap
from tests.mirror.conftest import Pushed, push_new
from tests.mirror.helpers import repo_listing, rich_repo, tree_listing
from tests.support.casefold_fs import mounted
from tests.support.git import git
from tests.support.processes import Cli, RunningManager


@pytest.fixture
def folding(tmp_path: Path) -> Iterator[Path]:
    with mounted(tmp_path / "backing", tmp_path / "laptop") as mountpoint:
        yield mountpoint


@pytest.fixture
def on_folding(ocm: Cli, folding: Path) -> Pushed:
    """The rich repo made on the folding laptop, pushed to a new Manager repo."""
    return push_new(ocm, folding / "proj")


NFC, NFD = "caf\u00e9.md", "cafe\u0301.md"  # the same name to a reader, and to a Mac


def names(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_the_laptops_file_system_folds_names_as_a_macs_does(folding: Path, tmp_path: Path) -> None:
    (folding / "Notes.md").write_text("one\n")
    assert (folding / "NOTES.md").read_text() == "one\n"
    (folding / "Notes.md").rename(folding / "notes.md")  # the same file, in another case
    assert names(folding) == ["notes.md"]
    (folding / NFD).write_text("two\n")
    assert (folding / NFC).read_text() == "two\n"
    (folding / NFD).rename(folding / NFC)  # the same file, encoded otherwise
    assert names(folding) == [NFC, "notes.md"]
    key = swap.name_folding(folding)
    assert key is not None and key("Notes.md") == key("NOTES.md") and key(NFC) == key(NFD)
    assert key("notes.md") != key("notes.txt")
    assert swap.name_folding(tmp_path) is None
    assert names(folding) == [NFC, "notes.md"]  # the probe leaves nothing behind


def test_a_case_only_rename_arrives_and_the_next_push_keeps_the_file(
    ocm: Cli, on_folding: Pushed
) -> None:
    p = on_folding
    git(p.directory, "mv", "README.md", "readme.md")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    # Before: the rename's deletion came after its new name found the old file there, so
    # the file went, and the next push deleted it on the Manager as well.
    assert "readme.md" in names(p.laptop) and "README.md" not in names(p.laptop)
    assert (p.laptop / "readme.md").read_text() == "# proj\n"
    assert git(p.laptop, "status", "--short") == git(p.directory, "status", "--short")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "readme.md").read_text() == "# proj\n"
    assert "README.md" not in names(p.directory)


def test_a_rename_into_another_unicode_form_arrives_and_the_next_push_keeps_the_file(
    ocm: Cli, on_folding: Pushed
) -> None:
    p = on_folding
    (p.laptop / NFD).write_text("menu\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    git(p.directory, "add", NFD)
    git(p.directory, "mv", NFD, NFC)  # an agent's tool that writes names in NFC
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert NFC in names(p.laptop) and NFD not in names(p.laptop)
    assert (p.laptop / NFC).read_text() == "menu\n"
    assert git(p.laptop, "status", "--short") == git(p.directory, "status", "--short")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert names(p.directory).count(NFC) == 1 and NFD not in names(p.directory)
    assert (p.directory / NFC).read_text() == "menu\n"


def test_a_rename_in_case_with_an_edit_and_a_folders_rename_arrive(
    ocm: Cli, on_folding: Pushed
) -> None:
    p = on_folding
    git(p.directory, "mv", "README.md", "Readme.md")
    (p.directory / "Readme.md").write_text("# proj, edited by an agent\n")
    git(p.directory, "mv", "docs", "Docs")
    git(p.directory, "commit", "-q", "-am", "renamed in case")
    expected = tree_listing(p.directory)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "Readme.md").read_text() == "# proj, edited by an agent\n"
    # Each file has its content; the folder's own name stays in the case it had here, as
    # git's checkout leaves it on such a system (the files in it are what git lists).
    assert {name.casefold(): v for name, v in tree_listing(p.laptop).items()} == {
        name.casefold(): v for name, v in expected.items()
    }
    assert git(p.laptop, "status", "--short") == ""
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert tree_listing(p.directory) == expected


@pytest.mark.parametrize(
    ("made", "clash"),
    [
        ({"Notes.md": "upper\n", "notes.md": "lower\n"}, "Notes.md and notes.md"),
        # Beside a file the laptop keeps (README.md), which the snapshot holds as well.
        ({"readme.MD": "lower\n"}, "README.md and readme.MD"),
        ({NFC: "one\n", NFD: "two\n"}, f"{NFD!a} and {NFC!a}"),
    ],
    ids=["both incoming", "one kept here", "unicode forms"],
)
def test_two_names_one_on_this_file_system_are_refused_and_nothing_changes(
    ocm: Cli, on_folding: Pushed, made: dict[str, str], clash: str
) -> None:
    p = on_folding
    for name, text in made.items():
        (p.directory / name).write_text(text)
    laptop_before, manager_before = repo_listing(p.laptop), tree_listing(p.directory)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ocm: This checkout")
    assert f"takes {clash} for one file (their names differ only in " in done.stderr
    assert "nothing was changed; rename one of them where the snapshot came from" in done.stderr
    assert repo_listing(p.laptop) == laptop_before
    assert tree_listing(p.directory) == manager_before
    # Renamed there, the pull goes through.
    for number, name in enumerate(made):
        (p.directory / name).rename(p.directory / f"other-{number}.md")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert tree_listing(p.laptop) == tree_listing(p.directory)


def test_a_name_that_is_not_utf8_is_refused_here(ocm: Cli, on_folding: Pushed) -> None:
    """An agent's tool on the Manager's Linux wrote a name in Latin-1 (git takes any bytes);
    a Mac's disk takes only UTF-8 names."""
    p = on_folding
    latin1 = os.fsencode(p.directory) + b"/latin-1 \xe9t\xe9.txt"
    with open(latin1, "w") as file:
        file.write("summer\n")
    laptop_before, manager_before = repo_listing(p.laptop), tree_listing(p.directory)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert done.stderr == (
        "ocm: This checkout is on a file system that takes only UTF-8 names, and the incoming "
        "snapshot holds the name b'latin-1 \\xe9t\\xe9.txt', which is not; nothing was "
        "changed; rename it where the snapshot came from, then run the command again\n"
    )
    assert repo_listing(p.laptop) == laptop_before
    assert tree_listing(p.directory) == manager_before
    os.rename(latin1, p.directory / "latin-1 été.txt")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "latin-1 été.txt").read_text() == "summer\n"


def test_a_path_through_this_checkouts_symlink_in_another_form_is_refused(
    ocm: Cli, on_folding: Pushed, tmp_path: Path
) -> None:
    """A symlink of the laptop's that leaves the repo, pushed, and an agent's folder of the
    same name in the other Unicode form: writing there would write through the link,
    outside the repo."""
    p = on_folding
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, p.laptop / NFC.removesuffix(".md"))
    assert ocm(p.laptop, "push").returncode == 0
    (p.directory / NFD.removesuffix(".md")).mkdir()
    (p.directory / NFD.removesuffix(".md") / "x.txt").write_text("written through\n")
    laptop_before = repo_listing(p.laptop)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert (
        f"ocm: the snapshot writes {NFD.removesuffix('.md')}/x.txt through the symlink "
        f"{NFC.removesuffix('.md')} (a Mac's disk takes 'cafe\\u0301' and 'caf\\xe9' for one "
        "name); rename that folder or the symlink, then run the command again"
    ) in done.stderr
    assert list(outside.iterdir()) == []
    assert repo_listing(p.laptop) == laptop_before


def test_a_rename_in_case_made_here_arrives_on_the_manager(ocm: Cli, on_folding: Pushed) -> None:
    p = on_folding
    git(p.laptop, "mv", "README.md", "readme.md")
    (p.laptop / "readme.md").write_text("# proj, renamed here\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert "README.md" not in names(p.directory)
    assert (p.directory / "readme.md").read_text() == "# proj, renamed here\n"
    assert git(p.directory, "status", "--short") == git(p.laptop, "status", "--short")
    done = ocm(p.laptop, "pull")  # and back: nothing to bring, nothing lost
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "readme.md").read_text() == "# proj, renamed here\n"


def test_on_one_mac_the_managers_copy_takes_a_rename_in_case_as_one(
    folding: Path, manager_factory: Callable[..., RunningManager]
) -> None:
    """The quick start on a Mac: the Manager's data folder folds case as well. (``folding``
    first: it is unmounted after the Manager that uses it stops.)"""
    ocm = Cli(manager_factory("--no-opencode", data_dir=folding / "manager-data"))
    p = push_new(ocm, folding / "laptop" / "proj")
    git(p.laptop, "mv", "README.md", "readme.md")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert "readme.md" in names(p.directory) and "README.md" not in names(p.directory)
    assert (p.directory / "readme.md").read_text() == "# proj\n"
    # Another project whose name differs only in case: its folder would be this one's.
    other = folding / "laptop" / "Proj-two"
    rich_repo(other, origin="https://example.invalid/org/other.git")
    # It was "a folder ... though no repo of that name is registered": move it away, it said.
    done = ocm(other, "push", "--create", "--yes", "--name", "PROJ")
    assert done.returncode == 1
    assert "already has a repo named proj" in done.stderr, done.stderr
    added = ocm.manager.cli("repo", "add", str(other), "--name", "PROJ", check=False)
    assert added.returncode == 1
    assert "a repo named 'proj' already exists; pick another --name" in added.stderr
    assert (p.directory / "readme.md").read_text() == "# proj\n"
    assert [repo["name"] for repo in ocm.repos(other)] == ["proj"]
