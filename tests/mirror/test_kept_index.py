"""The index the last snapshot was built in is kept, so that uncommitted work is hashed once,
not on every push, and never at the cost of a wrong snapshot."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ocm.mirror.kept_index import KEPT_NAME
from tests.mirror.conftest import Pushed
from tests.mirror.helpers import age, rewrite_unseen, tree_listing
from tests.support.git import git
from tests.support.processes import Cli


def _push(ocm: Cli, p: Pushed, *, stays_home: str = "") -> None:
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    here = tree_listing(p.laptop)
    here.pop(stays_home, None)
    assert tree_listing(p.directory) == here


def _uncommitted(p: Pushed) -> None:
    """A day's uncommitted work: edits, new files, a deletion."""
    (p.laptop / "src/app.py").write_text("print('edited, not committed')\n")
    (p.laptop / "README.md").write_text("# proj\nedited too\n")
    (p.laptop / "notes").mkdir()
    for n in range(5):
        (p.laptop / f"notes/{n}.txt").write_text(f"note {n}\n")
    (p.laptop / "empty.txt").unlink()
    age(p.laptop, UNCOMMITTED)


UNCOMMITTED = ["src/app.py", "README.md", *(f"notes/{n}.txt" for n in range(5))]


def test_an_uncommitted_file_is_not_read_again_while_git_would_trust_it(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Like ``git status``: with ``core.trustctime`` off, a file rewritten with the same size
    and modification time counts as unchanged. That the push then sends the old content
    shows it took the file from the kept index, not from reading it."""
    p = pushed("proj")
    git(p.laptop, "config", "core.trustctime", "false")
    _uncommitted(p)
    _push(ocm, p)
    assert (p.laptop / ".git" / KEPT_NAME).exists()

    rewrite_unseen(p.laptop / "notes/0.txt")
    (p.laptop / "notes/1.txt").write_text("note 1, longer now\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "notes/0.txt").read_text() == "note 0\n"
    assert (p.directory / "notes/1.txt").read_text() == "note 1, longer now\n"


def test_after_a_commit_the_uncommitted_files_are_not_read_again(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """A commit changes what is staged; the kept index serves all the same, with the
    committed paths taken from the real index. With ``core.trustctime`` off, a file
    rewritten with the same size and time then travels as it was hashed before the commit."""
    p = pushed("proj")
    git(p.laptop, "config", "core.trustctime", "false")
    _uncommitted(p)
    _push(ocm, p)

    rewrite_unseen(p.laptop / "notes/0.txt")
    git(p.laptop, "add", "src/app.py", "notes/1.txt")
    git(p.laptop, "commit", "-q", "-m", "part of the day's work")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "notes/0.txt").read_text() == "note 0\n"  # not read again
    assert git(p.directory, "log", "-1", "--format=%s") == "part of the day's work"
    assert git(p.directory, "status", "--porcelain", "--", "src/app.py", "notes/1.txt") == ""


def test_what_changed_in_the_index_since_is_taken_from_the_index(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """After the kept index was made: part of the work committed (and a file it never saw
    changed and committed), a file put back as committed, an untracked file deleted, one
    ignored. Each push is the checkout as it is."""
    p = pushed("proj")
    _uncommitted(p)
    _push(ocm, p)

    (p.laptop / "nested/not-secret.txt").write_text("changed and committed at once\n")
    git(p.laptop, "add", "notes/0.txt", "src/app.py", "nested/not-secret.txt")
    git(p.laptop, "commit", "-q", "-m", "part of it")
    _push(ocm, p)

    git(p.laptop, "checkout", "--", "README.md")  # settled again: the real index vouches
    (p.laptop / "notes/1.txt").unlink()
    (p.laptop / ".gitignore").write_text("*.log\n!keep.log\nbuild/\nnotes/2.txt\n")
    (p.laptop / "notes/3.txt").write_text("note 3, edited\n")
    _push(ocm, p, stays_home="notes/2.txt")  # ignored now: the Manager's copy goes
    assert not (p.directory / "notes/1.txt").exists()
    assert (p.directory / "README.md").read_text() == "# proj\n"

    git(p.laptop, "add", "-A")
    git(p.laptop, "commit", "-q", "-m", "the rest")
    (p.laptop / "src/app.py").write_text("print('after the commit')\n")
    _push(ocm, p, stays_home="notes/2.txt")


def test_a_damaged_kept_index_is_not_used(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    p = pushed("proj")
    _uncommitted(p)
    _push(ocm, p)
    kept = p.laptop / ".git" / KEPT_NAME
    kept.write_bytes(kept.read_bytes()[:-40] + b"\0" * 40)
    (p.laptop / "notes/4.txt").write_text("note 4, edited\n")
    _push(ocm, p)
    kept.write_bytes(b"not an index")
    (p.laptop / "notes/4.txt").write_text("note 4, edited again\n")
    _push(ocm, p)


def test_a_kept_entry_whose_blob_was_pruned_is_hashed_again(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The kept index may name a blob nothing references any more, which ``git gc`` prunes
    after two weeks: the snapshot then starts again from the real index."""
    p = pushed("proj")
    _uncommitted(p)
    _push(ocm, p)
    blob = git(p.laptop, "hash-object", "notes/3.txt")
    git(p.laptop, "update-ref", "-d", "refs/ocm/snapshot")
    (p.laptop / ".git/objects" / blob[:2] / blob[2:]).unlink()  # loose: written by the push
    (p.laptop / "notes/4.txt").write_text("note 4, edited\n")
    _push(ocm, p)
    assert git(p.laptop, "cat-file", "-t", blob) == "blob"


def test_the_receivers_look_starts_from_the_index_it_kept(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The receiving side keeps the index its own look was built in, once the transfer it
    served has succeeded. With ``core.trustctime`` off, a Manager file rewritten with the
    same size and time counts as unchanged: that the next push is not refused over it, and
    leaves it alone, shows the Manager's look took it from the kept index."""
    p = pushed("proj")
    git(p.directory, "config", "core.trustctime", "false")
    _uncommitted(p)
    _push(ocm, p)  # the Manager's look found nothing uncommitted: nothing to keep yet
    age(p.directory, UNCOMMITTED)
    (p.laptop / "notes/4.txt").write_text("note 4, edited\n")
    _push(ocm, p)  # this look hashed the uncommitted files; its index is kept
    assert (p.directory / ".git" / KEPT_NAME).exists()

    note = p.directory / "notes/0.txt"
    rewrite_unseen(note)
    (p.laptop / "notes/1.txt").write_text("note 1, longer now\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert note.read_text() == "note X\n"
    assert (p.directory / "notes/1.txt").read_text() == "note 1, longer now\n"


def test_a_change_on_the_receiver_since_its_kept_look_is_seen(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """An agent's edit after the kept look is work at risk: the push is refused, and a
    refused transfer keeps no index of its own."""
    p = pushed("proj")
    _uncommitted(p)
    _push(ocm, p)
    age(p.directory, UNCOMMITTED)
    (p.laptop / "notes/4.txt").write_text("note 4, edited\n")
    _push(ocm, p)
    kept = (p.directory / ".git" / KEPT_NAME).read_bytes()

    (p.directory / "notes/0.txt").write_text("note 0, an agent's edit\n")
    (p.laptop / "notes/1.txt").write_text("note 1, edited\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 1 and "uncommitted changes" in done.stderr, done.stderr
    assert (p.directory / ".git" / KEPT_NAME).read_bytes() == kept
    assert (p.directory / "notes/0.txt").read_text() == "note 0, an agent's edit\n"


def _racy_agent_edit(p: Pushed) -> Path:
    """An agent rewrites README.md, same size, in the second the Manager's index was written
    (that second set an hour back; ``core.trustctime`` off stands for its ctime being that
    second too): git cannot trust the entry, and ``git ls-files --modified`` lists the file."""
    git(p.directory, "config", "core.trustctime", "false")
    readme = p.directory / "README.md"
    age(p.directory, ["README.md"])
    git(p.directory, "update-index", "-q", "--refresh")
    then = readme.stat().st_mtime_ns
    os.utime(p.directory / ".git" / "index", ns=(then, then))
    rewrite_unseen(readme)
    assert git(p.directory, "ls-files", "--modified") == "README.md"
    return readme


def test_an_edit_in_the_second_the_index_was_written_is_pulled(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The look starts from a copy of the index: dated now, that copy would vouch for the
    stat data its original cannot, and the pull would bring nothing."""
    p = pushed("proj")
    _racy_agent_edit(p)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "README.md").read_text() == "note X\n"


def test_a_push_refuses_over_an_edit_in_the_second_the_index_was_written(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    readme = _racy_agent_edit(p)
    (p.laptop / "README.md").write_text("# proj, the laptop's\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 1 and "uncommitted changes" in done.stderr, done.stderr
    assert readme.read_text() == "note X\n"
