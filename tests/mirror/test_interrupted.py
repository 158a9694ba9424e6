"""A transfer cut short (the process killed, another git at work) or a copy gone: the next
command finds every repo as it was, and says in one line what to do."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ocm.mirror import receive, swap
from ocm.mirror.pack import Limits
from ocm.mirror.select import STAGING_NAME
from ocm.mirror.state import PENDING_NAME
from tests.mirror.conftest import Pushed, agent_commits, commit_on_laptop
from tests.mirror.helpers import pack_bytes, paused_git, repo_listing, rich_repo, tree_listing
from tests.support import proctree
from tests.support.git import git, make_repo
from tests.support.processes import Cli, RunningManager, ocm_command
from tests.support.tap import Tap


class _Killed(BaseException):
    """The process dies: nothing after it runs, no undo either."""


def _pull_killed_mid_switch(
    source: Path, laptop: Path, monkeypatch: pytest.MonkeyPatch, *, whole: bool = False
) -> None:
    """What ``ocm pull`` leaves in ``laptop`` when killed halfway through switching its work
    tree to ``source``'s: half the files new, the plan to undo it in ``.git/ocm-staging``.
    ``whole``: killed right after the pass, before the refs moved: every file new."""
    data, outgoing = pack_bytes(source, [git(laptop, "rev-parse", "HEAD")])
    real_apply = swap.apply

    def half(work: Path, root: Path, plan: swap.Plan) -> None:
        done = plan.ops if whole else plan.ops[: len(plan.ops) // 2 + 1]
        real_apply(work, root, swap.Plan(ops=done))
        raise _Killed

    monkeypatch.setattr(swap, "apply", half)
    monkeypatch.setattr(receive, "_undo", lambda *a: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed), receive.repo_lock(laptop):
        receive.receive(
            laptop,
            io.BytesIO(data),
            snapshot_commit=outgoing.snapshot.commit,
            branch=outgoing.snapshot.branch,
            staging_dir=laptop / ".git" / STAGING_NAME,
            limits=Limits(),
            force=False,
        )
    monkeypatch.undo()


def test_a_push_after_a_pull_killed_mid_switch_sends_the_tree_as_it_was(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push first undoes the half switch, as the next pull would: else it sends a tree
    half old, half new, and the Manager takes it for this checkout's work."""
    p = pushed("proj")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(p.laptop), str(other))
    for name in ("README.md", "src/app.py", "empty.txt"):
        (other / name).write_text(f"{name} from elsewhere\n")
    git(other, "commit", "-q", "-am", "elsewhere")
    before = tree_listing(p.laptop)
    _pull_killed_mid_switch(other, p.laptop, monkeypatch)
    assert tree_listing(p.laptop) != before  # half switched

    done = ocm(p.laptop, "push")

    assert done.returncode == 0, done.stderr
    assert tree_listing(p.laptop) == before
    assert tree_listing(p.directory) == before
    assert not list((p.laptop / ".git" / STAGING_NAME).iterdir())


def test_a_push_looks_at_the_checkout_under_the_lock_a_pull_switches_it_under(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull switches the work tree holding this checkout's lock. A push took that lock
    only to undo a killed pull, then looked without it: a pull starting meanwhile could
    switch files under the look, and the push sent a tree half old, half new. Here git is
    held at the look's first command, where the lock must be the push's."""
    p = pushed("proj")
    (p.laptop / "README.md").write_text("# proj\nedited\n")
    paused = paused_git(tmp_path / "paused-git", "ls-files")
    monkeypatch.setenv("PATH", paused.env["PATH"])
    push = ocm.start(p.laptop, "push")
    try:
        assert proctree.wait_until(paused.reached.exists, 60)
        with pytest.raises(receive.Busy), receive.repo_lock(p.laptop):
            pass
    finally:
        paused.go.touch()
        _, err = push.communicate(timeout=120)
    assert push.returncode == 0, err
    assert (p.directory / "README.md").read_text() == "# proj\nedited\n"


def test_a_pull_killed_holding_the_index_lock_leaves_none_behind(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after it took git's index lock for the switch and before its plan was written
    (here: checking once more the files it replaces), a pull left .git/index.lock, which
    nothing removed: every later transfer was refused, and the user's own `git add`."""
    p = pushed("proj")
    (p.directory / "README.md").write_text("agent edit\n")
    paused = paused_git(tmp_path / "paused-git", "diff-files")
    monkeypatch.setenv("PATH", paused.env["PATH"])
    pulling = ocm.start(p.laptop, "pull")
    try:
        assert proctree.wait_until(paused.reached.exists, 60)
        assert (p.laptop / ".git" / "index.lock").exists()
    finally:
        pulling.kill()
        pulling.communicate()
        paused.go.touch()

    done = ocm(p.laptop, "pull")

    assert done.returncode == 0, done.stderr
    assert not (p.laptop / ".git" / "index.lock").exists()
    assert (p.laptop / "README.md").read_text() == "agent edit\n"
    git(p.laptop, "add", "README.md")


@pytest.mark.parametrize("command", ["pull", "push", "push to a Manager that is down"])
def test_edits_made_after_a_pull_killed_mid_switch_are_kept_aside(
    command: str,
    ocm: Cli,
    pushed: Callable[..., Pushed],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """git's index stays locked after the kill, an editor's save does not: a file the switch
    had replaced or created and the user has since edited, and one the user made where the
    switch had deleted one, are moved under ``.git/ocm-kept`` by the undo (not overwritten or
    deleted), and the command names the folder. The rest is put back, then transferred; a
    push that then fails still names the folder."""
    p = pushed("proj")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(p.laptop), str(other))
    for name in ("README.md", "src/app.py", "extra.txt"):
        (other / name).write_text(f"{name} from elsewhere\n")
    (other / "empty.txt").unlink()
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "elsewhere")
    before = tree_listing(p.laptop)
    _pull_killed_mid_switch(other, p.laptop, monkeypatch, whole=True)
    assert (p.laptop / "extra.txt").exists() and not (p.laptop / "empty.txt").exists()
    edits = {
        "README.md": "the user's edit of the incoming README\n",  # replaced by the switch
        "extra.txt": "the user's edit of a file the switch created\n",
        "empty.txt": "the user's new file where the switch deleted one\n",
    }
    for name, text in edits.items():
        (p.laptop / name).write_text(text)

    if command in ("pull", "push"):
        done = ocm(p.laptop, command)
        assert done.returncode == 0, done.stderr
    else:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            down = f"http://127.0.0.1:{sock.getsockname()[1]}"
        done = subprocess.run(
            ocm_command("push"),
            cwd=p.laptop,
            env={**ocm.env(), "OPENCODE_MANAGER_URL": down},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and "cannot reach the Manager" in done.stderr, done.stderr
    assert tree_listing(p.laptop) == before
    if command != "push to a Manager that is down":
        assert tree_listing(p.directory) == before
    kept = [line for line in done.stdout.splitlines() if "kept here:" in line]
    assert len(kept) == 1 and "3 files changed after an interrupted transfer" in kept[0], kept
    folder = Path(kept[0].split("moved to ")[1].split(" (")[0])
    assert folder.parent == p.laptop / ".git" / "ocm-kept"
    assert {name: (folder / name).read_text() for name in edits} == edits
    assert sorted(swap.walk_files(folder)) == sorted(edits)  # src/app.py was not edited
    assert not list((p.laptop / ".git" / STAGING_NAME).iterdir())


def test_a_manager_copy_moved_away_is_not_met_with_force(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """--force cannot bring back a copy deleted or moved behind the Manager's back: the
    advice is to put it back, or to start the repo afresh."""
    p = pushed("proj")
    moved = tmp_path / "moved-away"
    p.directory.rename(moved)
    (p.laptop / "README.md").write_text("more\n")
    for said in _every_transfer_refused(ocm, p.laptop):
        assert "no git checkout" in said and "ocm push --create" in said, said
    moved.rename(p.directory)
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "README.md").read_text() == "more\n"


def _every_transfer_refused(ocm: Cli, laptop: Path) -> list[str]:
    """What push and pull, forced or not, each said: one line, and no advice to --force
    (which fails the same way)."""
    said = []
    for command in (["push"], ["push", "--force"], ["pull"], ["pull", "--force"]):
        done = ocm(laptop, *command)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and "--force" not in done.stderr, done.stderr
        said.append(done.stderr)
    return said


def test_a_manager_copy_with_a_broken_git_is_named_and_spares_the_others(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """A Manager copy whose ``.git/HEAD`` is garbage: git sees no repo there. Each transfer
    says so in one line (not a pack "refused" by the client's own command), other repos go
    on working, and once it is repaired the next push works."""
    p, other = pushed("proj"), pushed("other")
    head = p.directory / ".git" / "HEAD"
    good = head.read_bytes()
    head.write_bytes(b"garbage\n")
    (p.laptop / "README.md").write_text("more\n")
    before = repo_listing(p.laptop)
    for said in _every_transfer_refused(ocm, p.laptop):
        assert "is not a usable git repository" in said and "repair it on the Manager" in said
    assert repo_listing(p.laptop) == before
    assert ocm(other.laptop, "push").returncode == 0
    assert ocm(other.laptop, "pull").returncode == 0
    head.write_bytes(good)
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "README.md").read_text() == "more\n"


def test_the_look_for_lost_objects_gives_up_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The Manager's ``git fsck`` after a failed transfer walks the whole history: on a huge
    one it is stopped at its time limit (git killed), said in the log, and the failure is
    answered as it would have been, instead of holding a thread and the client for minutes.
    A ``git`` on PATH whose fsck never ends stands in for that history."""
    from manager import mirror as manager_mirror

    repo = make_repo(tmp_path / "proj")
    slow = tmp_path / "bin"
    slow.mkdir()
    pid_file = tmp_path / "fsck.pid"
    (slow / "git").write_text(
        "#!/bin/sh\n"
        f'for a; do [ "$a" = fsck ] && echo $$ > {pid_file} && exec sleep 600; done\n'
        f'exec {shutil.which("git")} "$@"\n'
    )
    (slow / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(manager_mirror, "FSCK_SECONDS", 0.5)
    caplog.set_level("WARNING", logger="manager.mirror")
    assert manager_mirror._lost_objects(repo) is None
    assert f"cannot tell whether {repo} lost objects: git fsck did not finish within 0.5 s" in (
        caplog.text
    )
    assert not proctree.alive(int(pid_file.read_text()))


def test_a_manager_copy_that_lost_its_objects_is_named_as_such(
    ocm: Cli, pushed: Callable[..., Pushed], manager: RunningManager
) -> None:
    """A Manager copy whose objects are gone (a restore or a disk fault took them) while
    its refs still name them: each transfer says so in one line with what to do, not git's
    "missing object" from some command, nor "no commit yet" for a copy that has one; both
    work trees stay as they were, and once the objects are back the next push works."""
    p = pushed("proj")
    objects = p.directory / ".git" / "objects"
    aside = objects.with_name("objects-aside")
    objects.rename(aside)
    objects.mkdir()
    (p.laptop / "README.md").write_text("more\n")
    laptop_before, manager_before = repo_listing(p.laptop), repo_listing(p.directory)
    for said in _every_transfer_refused(ocm, p.laptop):
        assert "The Manager's copy of proj" in said and "is missing objects" in said, said
        assert "repair it on the Manager" in said and "(git fsck: missing " in said, said
    assert repo_listing(p.laptop) == laptop_before
    assert repo_listing(p.directory) == manager_before
    assert "proj is missing objects (git fsck:" in manager.log()
    shutil.copytree(aside, objects, dirs_exist_ok=True)
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "README.md").read_text() == "more\n"


def test_temp_indexes_of_killed_transfers_are_swept_by_the_next(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """A push or pull SIGKILLed while git hashes the work tree leaves its temp index (and
    git's lock on it) in ``.git``; one more on every kill, never deleted. The next transfer
    sweeps those of dead processes and leaves a live one's alone."""
    p = pushed("proj")
    git_dir = p.laptop / ".git"
    dead = subprocess.Popen(["sleep", "60"])
    dead.kill()
    dead.wait()
    leftovers = [f"ocm-index-{dead.pid}-k1ll3d", f"ocm-index-{dead.pid}-k1ll3d.lock"]
    live = f"ocm-index-{os.getpid()}-running"
    for name in [*leftovers, live]:
        (git_dir / name).write_bytes(b"DIRC" + os.urandom(64))
    old_style = git_dir / "ocm-index-b2p0b9pg"  # no process id: judged by its age
    old_style.write_bytes(b"DIRC")
    os.utime(old_style, (1, 1))
    (p.laptop / "README.md").write_text("more\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert sorted(n.name for n in git_dir.glob("ocm-index-*")) == [live]


def test_a_git_at_work_in_either_repo_holds_off_the_switch(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Another git holding the index (``index.lock``) would rename its index over the one a
    switch builds. The transfer is refused in one line naming the lock, and changes nothing."""
    p = pushed("proj")
    (p.directory / "agent.txt").write_text("the agent's file\n")
    _held_off_then_through(ocm, p.laptop, "pull", receiver=p.laptop)
    assert (p.laptop / "agent.txt").exists()

    (p.laptop / "README.md").write_text("from the laptop\n")
    _held_off_then_through(ocm, p.laptop, "push", receiver=p.directory)
    assert (p.directory / "README.md").read_text() == "from the laptop\n"


@pytest.mark.parametrize("lock", ["refs/heads/main.lock", "HEAD.lock"])
def test_a_git_holding_the_branch_or_head_holds_off_a_transfer_that_moves_them(
    ocm: Cli, pushed: Callable[..., Pushed], lock: str
) -> None:
    """A git at work on a ref (or one killed in its work, which left its lock) made the
    Manager answer 500, "git update-ref failed in <folder>: remove the file manually to
    continue", naming no file; on the laptop the same words. Now: who holds off, which
    file, and nothing changed."""
    p = pushed("proj")
    agent_commits(p)
    _held_off_then_through(ocm, p.laptop, "pull", receiver=p.laptop, lock=lock)
    assert (p.laptop / "agent.txt").exists()

    commit_on_laptop(p)
    said = _held_off_then_through(ocm, p.laptop, "push", receiver=p.directory, lock=lock)
    assert said.startswith("ocm: The Manager's copy of proj is in use by another git command")
    assert git(p.directory, "log", "-1", "--format=%s") == "laptop commit"


def _held_off_then_through(
    ocm: Cli, laptop: Path, command: str, *, receiver: Path, lock: str = "index.lock"
) -> str:
    """``command`` from ``laptop`` while a git holds ``lock`` in ``receiver``'s ``.git``: one
    line naming the lock, nothing changed; once that git is done, it goes through. What the
    refusal said."""
    held = receiver / ".git" / lock
    held.write_bytes(b"")
    before = repo_listing(receiver)
    done = ocm(laptop, command)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    named = (
        f"(its .git/{lock} exists); wait for that command to end (if no git is running, "
        f"delete .git/{lock}), then run this one again"
    )
    assert named in done.stderr, done.stderr
    assert repo_listing(receiver) == before
    held.unlink()
    assert ocm(laptop, command).returncode == 0
    assert not held.exists()
    return done.stderr


def test_a_push_cut_off_mid_upload_says_so_and_the_next_one_goes_through(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Not "cannot reach the Manager; check the URL": it was reached, and the push broke off."""
    p = pushed("proj")
    before = repo_listing(p.directory)
    (p.laptop / "big.bin").write_bytes(os.urandom(400_000))
    host, port = ocm.manager.url.removeprefix("http://").split(":")
    tap = Tap((host, int(port)), cut_after=200_000)
    try:
        env = ocm.env() | {"OPENCODE_MANAGER_URL": tap.url}
        done = subprocess.run(
            ocm_command("push"), cwd=p.laptop, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
    finally:
        tap.close()
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "the push to proj broke off" in done.stderr and "run `ocm push` again" in done.stderr
    assert repo_listing(p.directory) == before
    assert ocm(p.laptop, "push").returncode == 0
    assert (p.directory / "big.bin").read_bytes() == (p.laptop / "big.bin").read_bytes()


def _through(tap: Tap, ocm: Cli, laptop: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ocm <args>`` in ``laptop``, logged in to the Manager at ``tap``'s address."""
    env = ocm.env() | {"OPENCODE_MANAGER_URL": tap.url}
    return subprocess.run(
        ocm_command(*args), cwd=laptop, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


@pytest.fixture
def tap(ocm: Cli) -> Iterator[Tap]:
    host, port = ocm.manager.url.removeprefix("http://").split(":")
    relay = Tap((host, int(port)))
    yield relay
    relay.close()


def _push_answer_lost(tap: Tap, ocm: Cli, laptop: Path) -> None:
    """``ocm push`` whose upload reaches the Manager, which switches, while its answer is
    lost on the way back (the link drops, or ``ocm`` is killed right then)."""
    tap.mute = b"/up?"
    lost = _through(tap, ocm, laptop, "push")
    tap.mute = None
    assert lost.returncode == 1, lost.stderr
    assert "the push to proj broke off" in lost.stderr and "run `ocm push` again" in lost.stderr


def test_a_push_whose_answer_was_lost_is_not_taken_for_the_managers_work(
    ocm: Cli, pushed: Callable[..., Pushed], tap: Tap
) -> None:
    """The Manager holds this checkout's own last push, though this checkout never heard it
    arrive: the next push goes through, not "both sides changed"."""
    p = pushed("proj")
    (p.laptop / "src/app.py").write_text("print('first')\n")
    (p.laptop / "notes.md").write_text("first\n")
    _push_answer_lost(tap, ocm, p.laptop)
    assert (p.directory / "notes.md").read_text() == "first\n"  # the Manager did switch

    (p.laptop / "src/app.py").write_text("print('second')\n")
    done = _through(tap, ocm, p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert not (p.laptop / ".git" / PENDING_NAME).exists()
    assert (p.directory / "src/app.py").read_text() == "print('second')\n"
    assert tree_listing(p.directory) == tree_listing(p.laptop)


def test_a_pull_after_a_push_whose_answer_was_lost_goes_through(
    ocm: Cli, pushed: Callable[..., Pushed], tap: Tap
) -> None:
    p = pushed("proj")
    (p.laptop / "notes.md").write_text("first\n")
    _push_answer_lost(tap, ocm, p.laptop)
    (p.directory / "agent.md").write_text("an agent's file\n")

    done = _through(tap, ocm, p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "agent.md").read_text() == "an agent's file\n"
    assert tree_listing(p.directory) == tree_listing(p.laptop)


def test_a_push_cut_off_before_the_manager_switched_still_guards_its_work(
    ocm: Cli, pushed: Callable[..., Pushed], tap: Tap
) -> None:
    """The note of a push in flight counts only when the Manager received that very push:
    one cut off mid-upload leaves an agent's later edit there refused, as ever."""
    p = pushed("proj")
    (p.laptop / "big.bin").write_bytes(os.urandom(400_000))
    tap.cut_after = 200_000
    assert _through(tap, ocm, p.laptop, "push").returncode == 1
    tap.cut_after = None
    assert not (p.directory / "big.bin").exists()
    (p.directory / "README.md").write_text("an agent's edit\n")

    refused = _through(tap, ocm, p.laptop, "push")
    assert refused.returncode == 1
    assert "the Manager's copy of proj has uncommitted changes" in refused.stderr
    assert (p.directory / "README.md").read_text() == "an agent's edit\n"
    assert not (p.laptop / ".git" / PENDING_NAME).exists()
    assert _through(tap, ocm, p.laptop, "pull", "--force").returncode == 0
    assert (p.laptop / "README.md").read_text() == "an agent's edit\n"


def test_a_push_create_whose_answer_was_lost_is_settled_by_the_next_push(
    ocm: Cli, tap: Tap, tmp_path: Path
) -> None:
    """The repo was made and holds this checkout's state; the next push finds it by origin
    and takes it for this checkout's own, as after any push whose answer was lost."""
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    (laptop / "notes.md").write_text("uncommitted\n")
    tap.mute = b"/up?"
    lost = _through(tap, ocm, laptop, "push", "--create", "--yes")
    tap.mute = None
    assert lost.returncode == 1 and "broke off" in lost.stderr, lost.stderr
    directory = ocm.manager.data_dir / "repos" / "proj"
    assert (directory / "notes.md").read_text() == "uncommitted\n"  # made, and switched

    (laptop / "notes.md").write_text("edited since\n")
    done = _through(tap, ocm, laptop, "push")
    assert done.returncode == 0, done.stderr
    assert tree_listing(directory) == tree_listing(laptop)
