"""Push and pull of what a work tree and its index can hold: index bits, odd file names,
attributes and filters, hooks, big files, many files, refs beside the branch. The real CLI,
a real Manager, real git."""

from __future__ import annotations

import os
from pathlib import Path

from tests.mirror.helpers import repo_listing, rich_repo, tree_listing
from tests.mirror.test_refusals import follow, refusal
from tests.support.git import git, make_repo
from tests.support.processes import Cli


def test_a_pull_never_overwrites_edits_git_is_told_to_ignore(ocm: Cli, tmp_path: Path) -> None:
    laptop = make_repo(
        tmp_path / "laptop",
        origin="https://example.invalid/o/bits.git",
        files={"local.cfg": "shared\n", "sparse.cfg": "shared\n"},
    )
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    # Local edits git's status does not show, as for a machine's own settings.
    (laptop / "local.cfg").write_text("this laptop's password\n")
    git(laptop, "update-index", "--assume-unchanged", "local.cfg")
    (laptop / "sparse.cfg").write_text("this laptop's port\n")
    git(laptop, "update-index", "--skip-worktree", "sparse.cfg")
    # They travel as the index has them: the Manager's copy never gets them.
    done = ocm(laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (manager_copy / "local.cfg").read_text() == "shared\n"
    (manager_copy / "local.cfg").write_text("an agent's edit\n")
    (manager_copy / "sparse.cfg").write_text("an agent's edit\n")
    before = repo_listing(laptop)

    hidden = (("local.cfg", "--no-assume-unchanged"), ("sparse.cfg", "--no-skip-worktree"))
    for name, flag in hidden:
        what, todo = refusal(ocm(laptop, "pull", "--force"))
        assert name in what and "git is told to ignore" in what
        assert f"git update-index {flag} -- {name}" in todo[0]
        assert repo_listing(laptop) == before
        follow(ocm, laptop, todo[0].split(" then ")[0])
        before = repo_listing(laptop)

    # Now ordinary uncommitted changes: a forced pull keeps them as a stash.
    done = ocm(laptop, "pull", "--force")
    assert done.returncode == 0, done.stderr
    assert (laptop / "local.cfg").read_text() == "an agent's edit\n"
    git(laptop, "checkout", "--", ".")
    git(laptop, "stash", "pop")
    assert (laptop / "local.cfg").read_text() == "this laptop's password\n"
    assert (laptop / "sparse.cfg").read_text() == "this laptop's port\n"


def test_any_file_name_travels_both_ways(ocm: Cli, tmp_path: Path) -> None:
    laptop = make_repo(
        tmp_path / "laptop", origin="https://example.invalid/o/names.git", files={"Readme": "r\n"}
    )
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    names = [
        "back\\slash.txt",  # an ordinary character here (a separator only on Windows)
        "a b.txt",
        "new\nline.txt",
        "tab\there.txt",
        "-dash.txt",
        "--force",
        "star*.txt",
        "q?.txt",
        "caf\u00e9.txt",  # NFC
        "cafe\u0301-d.txt",  # NFD
        os.fsdecode(b"latin-1 \xe9t\xe9.txt"),
        "d" * 200 + "/" + "e" * 255,
    ]
    for name in names:
        (laptop / name).parent.mkdir(exist_ok=True)
        (laptop / name).write_bytes(os.fsencode(name) + b"\n")
    git(laptop, "add", "back\\slash.txt")
    git(laptop, "mv", "Readme", "README")  # a case-only rename
    done = ocm(laptop, "push")
    assert done.returncode == 0, done.stderr
    assert tree_listing(manager_copy) == tree_listing(laptop)
    assert git(manager_copy, "status", "--porcelain") == git(laptop, "status", "--porcelain")

    (manager_copy / "back\\slash.txt").write_text("an agent's edit\n")
    (manager_copy / "--force").unlink()
    done = ocm(laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert tree_listing(laptop) == tree_listing(manager_copy)
    assert (laptop / "back\\slash.txt").read_text() == "an agent's edit\n"


def test_a_whole_tree_written_in_parallel_arrives_exact_both_ways(ocm: Cli, tmp_path: Path) -> None:
    """From 100 files and 8 MB on, git writes them with one worker per core (its parallel
    checkout): a first push and a pull into a fresh clone of 300 files, links and exec bits
    among them, leave each side a copy of the other, index included."""
    origin = "https://example.invalid/o/many.git"
    laptop = rich_repo(tmp_path / "laptop", origin=origin)
    (laptop / "assets").mkdir()
    for k in range(2):
        (laptop / "assets" / f"blob{k}.bin").write_bytes(os.urandom(5 << 20))
    for n in range(300):
        path = laptop / f"d{n % 7}" / f"sub{n % 3}" / f"f{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {n}\n" * (n % 50))
        if n % 5 == 0:
            path.chmod(0o755)
        if n % 11 == 0:
            os.symlink(f"f{n}.txt", path.with_name(f"link{n}"))
    git(laptop, "add", "d0", "d1", "d2")  # some staged, the rest untracked
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    assert tree_listing(manager_copy) == tree_listing(laptop)
    assert git(manager_copy, "ls-files", "-s") == git(laptop, "ls-files", "-s")
    assert git(manager_copy, "status", "--porcelain") == git(laptop, "status", "--porcelain")

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    git(fresh, "remote", "add", "origin", origin)
    done = ocm(fresh, "pull")
    assert done.returncode == 0, done.stderr
    assert tree_listing(fresh) == tree_listing(manager_copy)
    assert git(fresh, "ls-files", "-s") == git(manager_copy, "ls-files", "-s")
    assert git(fresh, "status", "--porcelain") == git(manager_copy, "status", "--porcelain")


def test_a_file_turned_into_a_folder_travels_before_it_is_staged(ocm: Cli, tmp_path: Path) -> None:
    """An agent (or the user) replaces a tracked file by a folder of that name, or a tracked
    folder by a file, without `git add`: each transfer failed, `--force` too, with git's
    "appears as both a file and as a directory"."""
    laptop = make_repo(
        tmp_path / "laptop",
        origin="https://example.invalid/o/shapes.git",
        files={"notes": "a file\n", "build/out.txt": "in a folder\n"},
    )
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    manager_copy = ocm.manager.data_dir / "repos" / "laptop"
    (manager_copy / "notes").unlink()
    (manager_copy / "notes").mkdir()
    (manager_copy / "notes" / "inner.md").write_text("now a folder\n")

    done = ocm(laptop, "pull")

    assert done.returncode == 0, done.stderr
    assert (laptop / "notes" / "inner.md").read_text() == "now a folder\n"
    (laptop / "build" / "out.txt").unlink()
    (laptop / "build").rmdir()
    (laptop / "build").write_text("now a file\n")

    done = ocm(laptop, "push")

    assert done.returncode == 0, done.stderr
    assert (manager_copy / "build").read_text() == "now a file\n"
    assert tree_listing(manager_copy) == tree_listing(laptop)
