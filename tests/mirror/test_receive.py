"""The receiving side in-process: merge, keep, refuse, force, undo. Real repos, real git."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ocm.mirror import checks, gitcmd, history, swap
from ocm.mirror import receive as receive_mod
from ocm.mirror.errors import BadPack, Blocked, Busy, NoSpace, Refused, TooLarge
from ocm.mirror.pack import Limits
from ocm.mirror.select import Selection
from ocm.mirror.snapshot import read_snapshot
from ocm.mirror.state import read_marker
from tests.mirror import hostile
from tests.mirror.helpers import age, rewrite_unseen, rich_repo, transfer, tree_listing
from tests.support.git import git


def _clone(source: Path, target: Path) -> Path:
    git(source.parent, "clone", "-q", str(source), str(target))
    return target


def _work_changes(root: Path) -> None:
    (root / "README.md").write_text("# changed, not committed\n")
    (root / "src/new_module.py").write_text("untracked = True\n")
    (root / "src/app.py").unlink()
    (root / "bin/tool").write_text("#!/bin/sh\n")
    (root / "bin/tool").chmod(0o755)
    git(root, "add", "bin/tool")  # staged, so the index must travel too


def _refs(root: Path) -> str:
    return git(root, "for-each-ref", "--format=%(refname) %(objectname)")


def test_round_trip_makes_trees_identical_and_keeps_receiver_state(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    # The receiver's own things: ignored files, build dirs, branches, stash, config.
    (receiver / "node_modules/dep").mkdir(parents=True)
    (receiver / "node_modules/dep/index.js").write_text("installed\n")
    (receiver / ".venv/bin").mkdir(parents=True)
    (receiver / ".venv/bin/python").write_text("venv\n")
    (receiver / "debug.log").write_text("ignored\n")
    git(receiver, "branch", "feature")
    git(receiver, "config", "receiver.setting", "kept")
    (receiver / "README.md").write_text("stashed earlier\n")
    git(receiver, "stash", "push", "-q", "-m", "older stash")
    stash_before = git(receiver, "stash", "list")

    git(sender, "commit", "-q", "--allow-empty", "-m", "second")
    _work_changes(sender)
    result = transfer(sender, receiver, tmp_path)

    expected = tree_listing(sender)
    got = tree_listing(receiver)
    for kept in ("node_modules/dep/index.js", ".venv/bin/python", "debug.log"):
        assert kept in got
        del got[kept]
    assert got == expected
    assert git(receiver, "rev-parse", "HEAD") == git(sender, "rev-parse", "HEAD") == result.head
    assert git(receiver, "symbolic-ref", "HEAD") == "refs/heads/main"
    status = [
        line
        for line in git(receiver, "status", "--porcelain").splitlines()
        if line not in ("?? .venv/", "?? node_modules/")
    ]
    assert status == git(sender, "status", "--porcelain").splitlines()
    assert "feature" in git(receiver, "branch", "--list", "feature")
    assert git(receiver, "config", "receiver.setting") == "kept"
    assert git(receiver, "stash", "list") == stash_before
    assert "ocm: mirrored" in git(receiver, "reflog", "-1", "main")
    assert read_marker(receiver)["head"] == result.head
    assert not list((tmp_path / "staging").iterdir())


def test_sender_deletions_reach_the_receiver_and_empty_dirs_go(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    git(sender, "rm", "-q", "-r", "docs")
    git(sender, "commit", "-q", "-m", "drop docs")
    transfer(sender, receiver, tmp_path)
    assert not (receiver / "docs").exists()
    assert tree_listing(receiver) == tree_listing(sender)


def test_detached_head_stays_detached(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    git(sender, "commit", "-q", "--allow-empty", "-m", "two")
    git(sender, "checkout", "-q", "--detach", "HEAD~1")
    transfer(sender, receiver, tmp_path)
    assert git(receiver, "rev-parse", "HEAD") == git(sender, "rev-parse", "HEAD")
    assert git(receiver, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
    assert git(receiver, "rev-parse", "main") != git(sender, "rev-parse", "main")  # untouched


def test_dirty_receiver_refuses_then_force_stashes_everything(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (receiver / "README.md").write_text("agent work\n")
    (receiver / "notes.md").write_text("untracked agent work\n")
    (receiver / "node_modules").mkdir()
    (receiver / "node_modules/x.js").write_text("unignored but excluded\n")
    before = tree_listing(receiver)
    refs_before = _refs(receiver)
    (sender / "src/app.py").write_text("print('sender')\n")

    with pytest.raises(Refused, match="uncommitted changes"):
        transfer(sender, receiver, tmp_path)
    assert tree_listing(receiver) == before
    assert _refs(receiver) == refs_before

    result = transfer(sender, receiver, tmp_path, force=True)
    assert any(re.search(r"`git stash apply [0-9a-f]{12}`", line) for line in result.saved)
    assert (receiver / "node_modules/x.js").read_text() == "unignored but excluded\n"
    assert not (receiver / "notes.md").exists()
    git(receiver, "checkout", "-q", "--", ".")  # drop the mirrored change, then restore
    git(receiver, "stash", "apply", "-q")
    assert (receiver / "README.md").read_text() == "agent work\n"
    assert (receiver / "notes.md").read_text() == "untracked agent work\n"


def test_receiver_commits_the_sender_lacks_refuse_then_force_backs_up(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    git(receiver, "commit", "-q", "--allow-empty", "-m", "agent commit 1")
    git(receiver, "commit", "-q", "--allow-empty", "-m", "agent commit 2")
    agent_tip = git(receiver, "rev-parse", "HEAD")
    git(sender, "commit", "-q", "--allow-empty", "-m", "laptop commit")

    with pytest.raises(Refused, match="2 commits on main that the incoming history lacks"):
        transfer(sender, receiver, tmp_path)
    assert git(receiver, "rev-parse", "main") == agent_tip

    result = transfer(sender, receiver, tmp_path, force=True)
    assert git(receiver, "rev-parse", "main") == git(sender, "rev-parse", "main")
    backups = git(
        receiver, "for-each-ref", "--format=%(refname) %(objectname)", "refs/ocm/backup/main/"
    )
    assert backups.endswith(agent_tip)
    assert any("refs/ocm/backup/main/" in line for line in result.saved)


def test_second_transfer_over_own_mirror_is_not_a_conflict(tmp_path: Path) -> None:
    """After a push of uncommitted work the receiver is dirty, but nothing there is new."""
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (sender / "README.md").write_text("uncommitted 1\n")
    transfer(sender, receiver, tmp_path)
    (sender / "README.md").write_text("uncommitted 2\n")
    transfer(sender, receiver, tmp_path)
    assert (receiver / "README.md").read_text() == "uncommitted 2\n"
    (receiver / "README.md").write_text("agent edit\n")
    with pytest.raises(Refused):
        transfer(sender, receiver, tmp_path)


def test_incoming_file_blocked_by_kept_ignored_dir_refuses(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (receiver / "build").mkdir()
    (receiver / "build/artifact").write_text("ignored by build/\n")
    (sender / ".gitignore").write_text("*.log\n")
    (sender / "build").write_text("now a file\n")
    with pytest.raises(Blocked, match="files it ignores in build"):  # --force does not help
        transfer(sender, receiver, tmp_path, force=True)
    assert (receiver / "build/artifact").read_text() == "ignored by build/\n"


def test_failure_during_switch_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    for n in range(30):
        (sender / f"many/f{n}.txt").parent.mkdir(exist_ok=True)
        (sender / f"many/f{n}.txt").write_text(f"{n}\n")
    (sender / "README.md").write_text("changed\n")
    (sender / "src/app.py").unlink()
    git(sender, "add", "-A")
    git(sender, "commit", "-q", "-m", "change")
    before, refs_before = tree_listing(receiver), _refs(receiver)
    index_before = (receiver / ".git/index").read_bytes()

    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 12:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(swap.os, "replace", failing_replace)
    with pytest.raises(NoSpace, match="disk is full"):
        transfer(sender, receiver, tmp_path)
    monkeypatch.undo()
    assert tree_listing(receiver) == before
    assert _refs(receiver) == refs_before
    assert (receiver / ".git/index").read_bytes() == index_before
    assert not list((tmp_path / "staging").iterdir())
    assert not (receiver / ".git" / swap.KEPT).exists()  # its own files, nothing set aside


def test_crash_mid_switch_is_undone_on_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (sender / "README.md").write_text("changed\n")
    (sender / "extra.txt").write_text("new\n")
    git(sender, "add", "-A")
    git(sender, "commit", "-q", "-m", "change")
    before, refs_before = tree_listing(receiver), _refs(receiver)

    class Crash(BaseException):
        pass

    real_apply = swap.apply

    def crash_after_half(work: Path, root: Path, plan: swap.Plan) -> None:
        half = swap.Plan(ops=plan.ops[: len(plan.ops) // 2 + 1])
        real_apply(work, root, half)
        raise Crash  # the process "dies": no undo runs

    monkeypatch.setattr(swap, "apply", crash_after_half)
    monkeypatch.setattr(receive_mod, "_undo", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        transfer(sender, receiver, tmp_path)
    monkeypatch.undo()
    assert tree_listing(receiver) != before  # half switched
    assert receive_mod.clean_leftovers(tmp_path / "staging").undone == 1
    assert tree_listing(receiver) == before
    assert _refs(receiver) == refs_before
    assert not list((tmp_path / "staging").iterdir())


def test_rollback_sets_aside_what_changed_since_the_switch(tmp_path: Path) -> None:
    """An undo from the plan, after a crash: files the switch put there and the user has
    since changed (or made where it deleted one) are moved to ``.git/ocm-kept``; those it
    left as they were are undone as ever. A plan written without identities is as before."""
    root, work = tmp_path / "root", tmp_path / "work"
    (root / ".git").mkdir(parents=True)
    for name in ("edited.txt", "untouched.txt", "deleted.txt", "recreated.txt"):
        (root / name).write_text(f"old {name}\n")
    incoming = ["edited.txt", "untouched.txt", "created.txt", "created-edited.txt"]
    for name in incoming:
        (work / "new").mkdir(parents=True, exist_ok=True)
        (work / "new" / name).write_text(f"new {name}\n")
    doomed = ["deleted.txt", "recreated.txt"]
    plan = swap.make_plan(root, work / "new", incoming, doomed, [*incoming, *doomed], "The repo")
    swap.write_plan(work, root, plan, {})
    swap.apply(work, root, plan)
    (root / "edited.txt").write_text("the user's edit\n")
    (root / "created-edited.txt").write_text("the user's edit too\n")
    (root / "recreated.txt").write_text("the user's new file\n")

    written = swap.load_plan(work)
    assert written is not None and written.ids is not None
    kept = swap.rollback(work, root, written.ops, written.ids)

    assert kept is not None and kept.parent == root / ".git" / swap.KEPT
    assert {name: (kept / name).read_text() for name in swap.walk_files(kept)} == {
        "edited.txt": "the user's edit\n",
        "created-edited.txt": "the user's edit too\n",
        "recreated.txt": "the user's new file\n",
    }
    assert {name: (root / name).read_text() for name in swap.walk_files(root)} == {
        name: f"old {name}\n"
        for name in ("edited.txt", "untouched.txt", "deleted.txt", "recreated.txt")
    }

    plan_file = work / swap.PLAN  # as a plan from before identities were recorded
    record = json.loads(plan_file.read_text())
    del record["ids"]
    plan_file.write_text(json.dumps(record))
    assert swap.load_plan(work) == (written.root, written.ops, {}, None)


def test_one_transfer_at_a_time(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    with receive_mod.repo_lock(receiver), pytest.raises(Busy):
        transfer(sender, receiver, tmp_path)
    shutil.rmtree(tmp_path / "staging", ignore_errors=True)


def test_ignored_file_the_sender_sends_is_refused_then_kept_aside(tmp_path: Path) -> None:
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (receiver / ".git/info/exclude").write_text("settings.local\n")
    (receiver / "settings.local").write_text("receiver's private settings\n")
    (sender / "settings.local").write_text("sender's version\n")
    with pytest.raises(
        Refused,
        match=r"ignored files where incoming files go \(.*\), which this transfer would overwrite",
    ):
        transfer(sender, receiver, tmp_path)
    assert (receiver / "settings.local").read_text() == "receiver's private settings\n"
    result = transfer(sender, receiver, tmp_path, force=True)
    assert (receiver / "settings.local").read_text() == "sender's version\n"
    kept = list((receiver / ".git/ocm-overwritten").glob("*/settings.local"))
    assert [p.read_text() for p in kept] == ["receiver's private settings\n"]
    assert any("ocm-overwritten" in line for line in result.saved)


def test_relative_paths_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Manager started with a relative ``--data-dir`` hands relative paths to the mirror."""
    sender = rich_repo(tmp_path / "sender")
    receiver = _clone(sender, tmp_path / "receiver")
    (sender / "README.md").write_text("through relative paths\n")
    monkeypatch.chdir(tmp_path)
    transfer(Path("sender"), Path("receiver"), Path("."))
    assert (receiver / "README.md").read_text() == "through relative paths\n"
    assert tree_listing(receiver) == tree_listing(sender)


def test_size_from_the_last_snapshot_matches_a_full_count_and_still_limits(
    tmp_path: Path,
) -> None:
    """A second transfer is sized from the recorded total plus what changed; it must come
    to the bytes of every file and refuse growth past the limit like a first transfer."""
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    first = transfer(source, target, tmp_path)
    files = [name for name in git(source, "ls-files", "-z").split("\0") if name]
    assert first.total == sum((source / name).lstat().st_size for name in files)
    assert read_marker(target)["bytes"] == first.total

    readme = (source / "README.md").lstat().st_size
    (source / "grown.txt").write_bytes(b"x" * 5000)
    (source / "README.md").unlink()
    second = transfer(source, target, tmp_path)
    full = transfer(source, _clone(source, tmp_path / "fresh"), tmp_path)
    assert read_marker(tmp_path / "fresh").get("bytes") == full.total
    assert second.total == full.total == first.total + 5000 - readme

    (source / "grown.txt").write_bytes(b"x" * 9000)
    before = tree_listing(target)
    with pytest.raises(TooLarge, match="more than the receiver accepts"):
        transfer(source, target, tmp_path, limits=Limits(max_bytes=second.total + 1000))
    assert tree_listing(target) == before


@pytest.mark.parametrize(
    ("name", "problem"),
    [("..", "'..'"), ("git~1", "nested .git"), ("up\\..\\x", "'..'"), ("x\\.GIT", "nested .git")],
)
def test_a_bad_path_only_in_the_snapshots_index_is_refused(
    tmp_path: Path, name: str, problem: str
) -> None:
    """The index's paths are checked by what differs from the work tree's, so a path only
    the index holds is checked too. In-process: fsck in ``index-pack`` would refuse some
    of these before the check is reached."""
    root = rich_repo(tmp_path / "repo")
    blob = hostile.blob(root, b"a")
    clean = hostile.files_tree(root, {"a": b"a"})
    index = hostile.tree(
        root, [hostile.Item("100644", "a", blob), hostile.Item("100644", name, blob)]
    )
    commit = hostile.snapshot_commit(root, clean, index)
    with pytest.raises(BadPack, match=f"the snapshot's index holds .*{re.escape(problem)}"):
        checks.weigh(root, {}, read_snapshot(root, {}, commit, "main"), Limits())
    fine = hostile.snapshot_commit(root, clean)  # the same tree without that index passes
    snap = read_snapshot(root, {}, fine, "main")
    checks.check(root, {}, snap, checks.weigh(root, {}, snap, Limits()), Selection(root), None)


def _receiver_tree_plus(root: Path, source: Path, entries: dict[str, tuple[str, bytes]]) -> str:
    """A snapshot commit in ``source`` of ``root``'s HEAD tree with ``entries`` added
    (path: (mode, content))."""
    index = {**os.environ, "GIT_INDEX_FILE": str(source / ".git" / "hostile-index")}

    def staged(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=source, env=index, capture_output=True)
        return done.stdout.decode().strip()

    staged("read-tree", git(root, "rev-parse", "HEAD^{tree}"))
    for path, (mode, data) in entries.items():
        staged(
            "update-index", "--add", "--cacheinfo", f"{mode},{hostile.blob(source, data)},{path}"
        )
    return hostile.snapshot_commit(source, staged("write-tree"))


@pytest.mark.parametrize(
    ("entries", "written"),
    [
        ({"LINK-TO-APP/x": ("100644", b"x")}, "LINK-TO-APP/x"),  # under a link it has
        ({"SRC": ("120000", b"docs")}, "src/app.py"),  # a new link over files it has
    ],
)
def test_a_write_through_a_symlink_is_refused_beside_files_that_did_not_change(
    tmp_path: Path, entries: dict[str, tuple[str, bytes]], written: str
) -> None:
    """Only what differs from the receiver's tree is checked, yet a new path under one of
    its unchanged symlinks, or a new symlink over its unchanged files, is refused: on a
    case-insensitive disk (a Mac's) the write would go through the link."""
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    transfer(source, target, tmp_path)  # both sides now hold link-to-app and src/
    commit = _receiver_tree_plus(target, source, entries)
    before = tree_listing(target)
    with receive_mod.repo_lock(target), pytest.raises(BadPack, match=re.escape(written)):
        receive_mod.receive(
            target,
            io.BytesIO(hostile.pack_of(source, commit)),
            snapshot_commit=commit,
            branch="main",
            staging_dir=tmp_path / "staging",
            limits=Limits(),
            force=True,
        )
    assert tree_listing(target) == before


def test_a_committed_change_leaves_every_other_files_stat_data_trusted(tmp_path: Path) -> None:
    """The receiver takes the sender's index (what is staged stays staged) keeping the stat
    data of every entry that did not change. A file rewritten with the same size and times
    is then taken on trust, as ``git status`` would. Before, an entry whose file the switch
    had replaced made ``read-tree -m`` refuse, and the fallback re-read every file of the
    work tree (0.7 s on 21,000 files)."""
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    transfer(source, target, tmp_path)
    git(target, "config", "core.trustctime", "false")
    age(target, ["README.md"])
    git(target, "update-index", "-q", "--refresh")
    (source / "src/app.py").write_text("print('changed')\n")
    git(source, "commit", "-qam", "a committed change: the index differs too")
    rewrite_unseen(target / "README.md")
    transfer(source, target, tmp_path)
    assert git(target, "rev-parse", ":src/app.py") == git(source, "rev-parse", "HEAD:src/app.py")
    assert git(target, "diff-files", "--name-only") == ""  # README.md was not read again


@pytest.mark.parametrize("by_name", [100, 0], ids=["by name", "whole index"])
def test_a_file_put_back_as_staged_is_trusted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_name: int
) -> None:
    """A file the switch rewrites whose index entry stays as it was (an unstaged change
    undone on the sender) gets its stat data back, so git does not re-read it on every
    look. Up to a hundred entries are refreshed by name (those that changed and those of
    files the switch wrote), more with one pass over the whole index."""
    monkeypatch.setattr(history, "_REFRESH_BY_NAME", by_name)
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    age(target, ["README.md"])  # its entry's stat data then cannot pass as "racily clean"
    git(target, "update-index", "-q", "--refresh")
    (source / "README.md").write_text("# changed, not staged\n")
    transfer(source, target, tmp_path)
    assert git(target, "diff-files", "--name-only") == "README.md"
    git(source, "checkout", "--", "README.md")
    transfer(source, target, tmp_path)
    assert git(target, "diff-files", "--name-only") == ""  # before a status refreshes it
    assert git(target, "status", "--porcelain") == ""


def test_a_submodule_link_travels_as_a_link(tmp_path: Path) -> None:
    """A real submodule link (an uninitialised submodule's empty folder, as a clone leaves
    it) passes the check of raw tree modes that refuses a device-like one."""
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    head = git(source, "rev-parse", "HEAD")
    git(source, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    git(source, "commit", "-q", "-m", "a submodule")
    (source / "vendor/lib").mkdir()
    transfer(source, target, tmp_path)
    assert git(target, "ls-tree", "HEAD", "vendor/lib").split()[:3] == ["160000", "commit", head]


@pytest.mark.parametrize("receiver_index", ["plain", "intent-to-add entry", "version 4"])
def test_the_senders_index_arrives_entry_for_entry(tmp_path: Path, receiver_index: str) -> None:
    """Staged additions, deletions, mode changes and content that differs from the work tree
    all arrive as staged. A plain index has just the entries that differ rewritten; one
    holding what a tree cannot say (an intent-to-add entry, index version 3) or in version
    4 is rebuilt from the tree by ``read-tree``: the same result either way."""
    source = rich_repo(tmp_path / "source")
    target = _clone(source, tmp_path / "target")
    transfer(source, target, tmp_path)
    (source / "staged-new.txt").write_text("added\n")
    (source / "src/app.py").write_text("print('staged')\n")
    git(source, "add", "staged-new.txt", "src/app.py")
    (source / "src/app.py").write_text("print('staged, then changed again')\n")
    git(source, "rm", "-q", "--cached", "README.md")  # stays as an untracked file
    git(source, "update-index", "--chmod=+x", "empty.txt")
    if receiver_index == "intent-to-add entry":
        (target / "planned.txt").write_text("planned\n")
        git(target, "add", "-N", "planned.txt")
    elif receiver_index == "version 4":
        git(target, "update-index", "--index-version", "4")
    transfer(source, target, tmp_path, force=True)
    assert git(target, "ls-files", "-s") == git(source, "ls-files", "-s")
    assert git(target, "status", "--porcelain") == git(source, "status", "--porcelain")
    assert tree_listing(target) == tree_listing(source)


def test_a_refresh_due_for_a_repo_that_is_gone_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Manager refreshes a repo's index in the background after a big push; a repo
    removed meanwhile ends that quietly instead of with a thread's traceback: whether its
    lock file cannot be opened, or git cannot start in the folder (removed in between)."""
    staging = tmp_path / "staging"
    receive_mod.settle_index(tmp_path / "gone", staging, attempts=1)
    repo = rich_repo(tmp_path / "proj")

    def vanished(root: Path, *args: str, **kwargs: object) -> None:
        raise gitcmd.GitError("cannot run git (No such file or directory)", "install git")

    monkeypatch.setattr(gitcmd, "run", vanished)
    receive_mod.settle_index(repo, staging, attempts=1)
    assert receive_mod.settling_marks(repo) == []
    assert not (repo / ".git" / receive_mod.INDEX_LOCK).exists()
    assert list(staging.iterdir()) == []


def test_a_settling_refreshes_a_copy_dated_like_the_index(tmp_path: Path) -> None:
    """The refresh after a big push works in a copy of the index, renamed over it under
    the index lock. A copy dated now would vouch for a file rewritten with the same size
    in the second the index was written ("racily clean"): `git status` would then no longer
    show it changed."""
    repo = rich_repo(tmp_path / "proj")
    git(repo, "config", "core.trustctime", "false")
    git(repo, "read-tree", "HEAD")  # no entry has stat data: the refresh has work to do
    hour_ago = time.time_ns() - 3600 * 10**9  # the others are to be taken on trust
    for name in git(repo, "ls-files", "-z").split("\0"):
        if name:
            os.utime(repo / name, ns=(hour_ago, hour_ago), follow_symlinks=False)
    # Added, then rewritten, in the second the index was written: a minute ago.
    note, written = repo / "note.txt", time.time_ns() - 60 * 10**9
    note.write_text("note 1\n")
    os.utime(note, ns=(written, written))
    git(repo, "add", "note.txt")
    os.utime(repo / ".git" / "index", ns=(written, written))
    rewrite_unseen(note)
    staging = tmp_path / "staging"

    receive_mod.settle_index(repo, staging, attempts=1)

    # diff-files trusts stat data and reads no file: entries without it would be listed.
    assert git(repo, "diff-files", "--name-only") == "note.txt"
    assert git(repo, "status", "--porcelain", "--", "note.txt") == "AM note.txt"
    assert not (repo / ".git" / receive_mod.INDEX_LOCK).exists()
    assert list(staging.iterdir()) == []


def test_a_settling_leaves_another_gits_index_lock_and_the_index_alone(tmp_path: Path) -> None:
    """The refresh after a big push takes the index lock as a switch does; one another git
    holds (an agent's commit) is not its to remove or write under: it gives up, leaving
    that lock and the index as they were."""
    repo = rich_repo(tmp_path / "proj")
    git(repo, "read-tree", "HEAD")  # no entry has stat data: a refresh would write
    index = (repo / ".git" / "index").read_bytes()
    lock = repo / ".git" / receive_mod.INDEX_LOCK
    lock.write_bytes(b"another git's index\n")
    held = lock.stat().st_ino
    staging = tmp_path / "staging"

    receive_mod.settle_index(repo, staging)

    assert lock.stat().st_ino == held
    assert lock.read_bytes() == b"another git's index\n"
    assert (repo / ".git" / "index").read_bytes() == index
    assert receive_mod.settling_marks(repo) == []
    assert list(staging.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounts a tmpfs")
def test_a_disk_that_fills_up_under_git_is_named_even_when_tmp_is_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real full disk that also holds TMPDIR, as on a one-disk server: git's "No space
    left on device" must still reach the message, not be lost with the disk it was written
    to ("refused by git index-pack: no output")."""
    from ocm.mirror import pack

    source = rich_repo(tmp_path / "src")
    (source / "big.bin").write_bytes(os.urandom(12 << 20))
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "big")
    body = subprocess.run(
        ["git", "pack-objects", "--stdout", "--revs", "-q"],
        cwd=source,
        input=b"HEAD\n",
        capture_output=True,
        check=True,
    ).stdout
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        receiver = disk / "repo"
        git(tmp_path, "init", "-q", str(receiver))
        (disk / "tmp").mkdir()
        monkeypatch.setenv("TMPDIR", str(disk / "tmp"))
        monkeypatch.setattr("tempfile.tempdir", None)
        with pytest.raises(NoSpace, match="disk is full"):
            pack.index_pack(receiver, io.BytesIO(body), disk / "q" / "objects", Limits())
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
