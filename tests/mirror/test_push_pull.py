"""``ocm push`` / ``ocm pull`` end to end: the real CLI, a real Manager, real git repos."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocm.mirror import checks, receive
from tests.mirror.conftest import Pushed, agent_commits, both_sides_change
from tests.mirror.helpers import pack_bytes, post_up, repo_listing, tree_listing
from tests.support.git import git
from tests.support.processes import Cli, as_from_a_terminal, ocm_command
from tests.support.proctree import wait_until
from tests.support.terminal import read_until_closed

KEPT = ("node_modules/dep/index.js", ".venv/bin/python", "debug.log")


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ocm: ") and "; " in lines[0], stderr
    return lines[0]


def _second_clone(pushed: Pushed, target: Path) -> Path:
    git(pushed.laptop.parent, "clone", "-q", str(pushed.laptop), str(target))
    git(target, "remote", "set-url", "origin", git(pushed.laptop, "remote", "get-url", "origin"))
    return target


def _add_receiver_things(root: Path) -> None:
    for name in KEPT:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"{name} belongs to this side\n")
    git(root, "branch", "side-branch")
    git(root, "config", "local.setting", "kept")
    (root / "README.md").write_text("stash me\n")
    git(root, "stash", "push", "-q", "-m", "own stash")


def _without(listing: dict, names: tuple[str, ...]) -> dict:
    return {k: v for k, v in listing.items() if k not in names}


def test_push_create_then_pull_into_second_clone(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    first = pushed("proj")
    assert [(r["name"], r["status"]) for r in ocm.repos(first.laptop)] == [("proj", "ready")]
    assert (
        git(first.directory, "remote", "get-url", "origin")
        == "https://example.invalid/org/proj.git"
    )
    other = _second_clone(first, tmp_path / "other")
    _add_receiver_things(other)
    _add_receiver_things(first.directory)  # the Manager keeps its own too

    # Work on the first laptop: a commit plus uncommitted, staged and untracked changes.
    laptop = first.laptop
    (laptop / "src/app.py").write_text("print('v2')\n")
    git(laptop, "commit", "-q", "-am", "v2")
    (laptop / "README.md").write_text("uncommitted\n")
    (laptop / "staged.txt").write_text("staged\n")
    git(laptop, "add", "staged.txt")
    (laptop / "docs/untracked notes ü.md").write_text("untracked\n")
    (laptop / "bin/new.sh").write_text("#!/bin/sh\n")
    (laptop / "bin/new.sh").chmod(0o755)
    (laptop / "link-to-app").unlink()
    done = ocm(laptop, "push")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ocm: pushed proj (#")
    assert git(laptop, "rev-parse", "HEAD")[:12] in done.stdout
    assert _without(tree_listing(first.directory), KEPT) == tree_listing(laptop)
    assert all((first.directory / name).exists() for name in KEPT)

    done = ocm(other, "pull")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ocm: pulled proj (#")
    assert _without(tree_listing(other), KEPT) == tree_listing(laptop)
    for name in KEPT:
        assert (other / name).read_text() == f"{name} belongs to this side\n"
    assert git(other, "rev-parse", "HEAD") == git(laptop, "rev-parse", "HEAD")
    assert git(other, "diff", "--cached", "--name-only") == "staged.txt"
    assert "side-branch" in git(other, "branch")
    assert git(other, "config", "local.setting") == "kept"
    assert "own stash" in git(other, "stash", "list")


def test_a_pull_over_this_checkouts_limits_names_the_setting_to_raise(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    other = _second_clone(pushed("proj"), tmp_path / "other")

    def pull(limit: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ocm_command("pull", "--force"),
            cwd=other,
            env={**ocm.env(), "OCM_PULL_MAX_BYTES": limit},
            capture_output=True,
            text=True,
            timeout=120,
        )

    line = _one_error_line(pull("10").stderr)
    # The whole snapshot counts, as the README says, not only the files this pull writes.
    assert "bytes in all (unchanged ones included), more than the receiver accepts (10)" in line
    assert "raise OCM_PULL_MAX_BYTES (bytes) or OCM_PULL_MAX_OBJECTS (objects)" in line
    line = _one_error_line(pull("-5").stderr)
    assert line == "ocm: OCM_PULL_MAX_BYTES='-5' is not a count; set OCM_PULL_MAX_BYTES to a count"


def test_create_needs_a_tty_or_yes(ocm: Cli, tmp_path: Path) -> None:
    from tests.mirror.helpers import rich_repo

    laptop = rich_repo(tmp_path / "fresh")
    done = ocm(laptop, "push")
    assert done.returncode == 1
    assert "push --create" in _one_error_line(done.stderr)
    done = ocm(laptop, "push", "--create")
    assert done.returncode == 1
    assert "--yes" in _one_error_line(done.stderr)
    assert ocm.repos(laptop) == []
    assert not (ocm.manager.data_dir / "repos" / "fresh").exists()


def test_create_where_a_repo_matches_says_it_pushes_there(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """`--create --name` in a checkout a repo already matches pushed there without a word:
    the person meant a new repo, and got none."""
    p = pushed("proj")
    (p.laptop / "README.md").write_text("meant for a new repo\n")

    done = ocm(p.laptop, "push", "--create", "--name", "proj-new", "--yes")

    assert done.returncode == 0, done.stderr
    assert (
        f"ocm: {p.laptop} already was the Manager's repo proj (#{p.repo_id}): pushed there;"
        " --create makes a repo only for a checkout no repo matches"
    ) in done.stderr
    assert [r["name"] for r in ocm.repos(p.laptop)] == ["proj"]
    assert (p.directory / "README.md").read_text() == "meant for a new repo\n"


def test_a_push_that_switches_the_managers_branch_says_so(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """An agent moved the Manager's copy to a branch of its own and committed there: the
    push takes it back to this checkout's branch (nothing is lost, the commit stays on its
    branch), and says so, as a pull says its own switch."""
    p = pushed("proj")
    git(p.directory, "switch", "-q", "-c", "feature")
    feature = agent_commits(p)
    (p.laptop / "README.md").write_text("laptop edit\n")

    done = ocm(p.laptop, "push")

    assert done.returncode == 0, done.stderr
    assert "main at " in done.stdout
    assert "(the Manager's copy switched from feature)" in done.stdout, done.stdout
    assert git(p.directory, "branch", "--show-current") == "main"
    assert git(p.directory, "rev-parse", "feature") == feature
    again = ocm(p.laptop, "push")
    assert again.returncode == 0 and "switched" not in again.stdout, again.stdout


def test_what_a_snapshot_leaves_out_is_named_both_ways(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """Nested repositories do not travel: a push named them, a pull left the Manager's out
    without a word."""
    p = pushed("proj")
    git(tmp_path, "init", "-q", str(p.laptop / "laptop-clone"))
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert "ocm: not sent (nested repositories, special files): laptop-clone/\n" in done.stderr, (
        done.stderr
    )
    assert not (p.directory / "laptop-clone").exists()

    for n in range(7):
        git(tmp_path, "init", "-q", str(p.directory / f"agent-clone-{n}"))
    done = ocm(p.laptop, "pull")

    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "not brought" in line]
    assert line.startswith(
        "ocm: not brought from the Manager's copy (nested repositories, special files): "
        "agent-clone-0/, "
    ), line
    assert line.endswith(" and 2 more"), line
    assert not (p.laptop / "agent-clone-0").exists()


def test_symlinks_leaving_the_repo_travel_as_symlinks_and_nothing_follows_them(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """A symlink travels as git keeps it, wherever it points: a repo with a committed link
    to ``/usr/share/dict`` or ``../shared`` was refused whole (400, "a symlink leaving the
    repo"), so it could not be mirrored at all. The switch renames and never follows one:
    links replaced by a folder and by a file leave what they pointed at as it was."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("outside\n")
    p = pushed("proj")
    os.symlink(outside, p.laptop / "abs-link")
    os.symlink("../../../outside/kept.txt", p.laptop / "src/up-link")
    git(p.laptop, "add", "abs-link")
    git(p.laptop, "commit", "-q", "-m", "a link to a folder outside")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert "not sent" not in done.stderr, done.stderr
    assert os.readlink(p.directory / "abs-link") == str(outside)
    assert os.readlink(p.directory / "src/up-link") == "../../../outside/kept.txt"
    assert git(p.directory, "status", "--short") == git(p.laptop, "status", "--short")

    (p.directory / "abs-link").unlink()
    (p.directory / "abs-link").mkdir()
    (p.directory / "abs-link/new.txt").write_text("an agent's, in a folder\n")
    (p.directory / "src/up-link").unlink()
    (p.directory / "src/up-link").write_text("an agent's file\n")
    os.symlink("/etc/hostname", p.directory / "agent-link")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "abs-link/new.txt").read_text() == "an agent's, in a folder\n"
    assert not (p.laptop / "abs-link").is_symlink()
    assert (p.laptop / "src/up-link").read_text() == "an agent's file\n"
    assert os.readlink(p.laptop / "agent-link") == "/etc/hostname"
    assert tree_listing(outside) == {"kept.txt": ("file", False, b"outside\n")}


def test_push_refuses_over_manager_changes_until_forced(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    both_sides_change(p)
    before = repo_listing(p.directory)
    done = ocm(p.laptop, "push")
    assert done.returncode == 1
    line = _one_error_line(done.stderr)
    assert "uncommitted changes" in line and "--force" in line
    assert repo_listing(p.directory) == before

    done = ocm(p.laptop, "push", "--force")
    assert done.returncode == 0, done.stderr
    assert re.search(r"`git stash apply [0-9a-f]{12}`", done.stdout), done.stdout
    assert (p.directory / "src/app.py").read_text() == "print('laptop')\n"
    assert not (p.directory / "agent-notes.md").exists()
    git(p.directory, "checkout", "-q", "--", ".")
    git(p.directory, "stash", "apply", "-q")
    assert (p.directory / "README.md").read_text() == "agent edit\n"
    assert (p.directory / "agent-notes.md").read_text() == "agent's untracked file\n"


def test_push_refuses_when_manager_has_commits_until_forced(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    agent_tip = agent_commits(p)
    git(p.laptop, "commit", "-q", "--allow-empty", "-m", "laptop commit")
    done = ocm(p.laptop, "push")
    assert done.returncode == 1
    assert "commits on main" in _one_error_line(done.stderr)
    assert git(p.directory, "rev-parse", "HEAD") == agent_tip

    done = ocm(p.laptop, "push", "--force")
    assert done.returncode == 0, done.stderr
    assert "refs/ocm/backup/main/" in done.stdout
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")
    backups = git(p.directory, "for-each-ref", "--format=%(objectname)", "refs/ocm/backup/")
    assert backups == agent_tip


def test_server_checks_again_at_swap_time(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    """A client that skipped /head (or raced an agent) still cannot overwrite work."""
    p = pushed("proj")
    (p.directory / "README.md").write_text("agent edit after the check\n")
    data, outgoing = pack_bytes(p.laptop)
    response = post_up(ocm.manager, p.repo_id, data, outgoing.snapshot.commit, headBranch="main")
    assert response.status_code == 409
    assert response.json()["error"] == "would_lose_work"
    assert "uncommitted changes" in response.json()["message"]
    assert (p.directory / "README.md").read_text() == "agent edit after the check\n"


def test_pull_refuses_over_local_changes_until_forced(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    (p.directory / "src/app.py").write_text("print('agent')\n")
    git(p.directory, "commit", "-q", "-am", "agent")
    (p.laptop / "README.md").write_text("local edit\n")
    (p.laptop / "local-notes.md").write_text("local untracked\n")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert "uncommitted changes" in _one_error_line(done.stderr)
    assert (p.laptop / "README.md").read_text() == "local edit\n"

    done = ocm(p.laptop, "pull", "--force")
    assert done.returncode == 0, done.stderr
    assert re.search(r"`git stash apply [0-9a-f]{12}`", done.stdout), done.stdout
    assert (p.laptop / "src/app.py").read_text() == "print('agent')\n"
    git(p.laptop, "stash", "apply", "-q")
    assert (p.laptop / "README.md").read_text() == "local edit\n"
    assert (p.laptop / "local-notes.md").read_text() == "local untracked\n"


def test_pull_refuses_over_local_commits_until_forced(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    git(p.laptop, "commit", "-q", "--allow-empty", "-m", "local only")
    local_tip = git(p.laptop, "rev-parse", "HEAD")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert "1 commit on main that the Manager" in _one_error_line(done.stderr)
    assert git(p.laptop, "rev-parse", "HEAD") == local_tip

    done = ocm(p.laptop, "pull", "--force")
    assert done.returncode == 0, done.stderr
    assert git(p.laptop, "rev-parse", "HEAD") == git(p.directory, "rev-parse", "HEAD")
    assert (
        git(p.laptop, "for-each-ref", "--format=%(objectname)", "refs/ocm/backup/main/")
        == local_tip
    )


def test_the_everyday_loop_needs_no_force(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    """push uncommitted work, an agent edits it on the Manager, pull, edit, push again."""
    p = pushed("proj")
    (p.laptop / "README.md").write_text("wip 1\n")
    assert ocm(p.laptop, "push").returncode == 0
    (p.directory / "README.md").write_text("wip 1 + agent\n")
    (p.directory / "agent.md").write_text("new from agent\n")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "agent.md").read_text() == "new from agent\n"
    (p.laptop / "README.md").write_text("wip 2\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "README.md").read_text() == "wip 2\n"
    assert not git(p.directory, "stash", "list")


def test_detached_head_push(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    p = pushed("proj")
    git(p.laptop, "commit", "-q", "--allow-empty", "-m", "two")
    git(p.laptop, "checkout", "-q", "--detach", "HEAD")
    git(p.laptop, "commit", "-q", "--allow-empty", "-m", "detached work")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert "detached HEAD at" in done.stdout
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")
    assert git(p.directory, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"


def test_a_pull_that_moves_head_to_another_branch_says_so(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    git(p.laptop, "checkout", "-q", "-b", "feature")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert "main at " in done.stdout and "(switched from feature)" in done.stdout
    assert git(p.laptop, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    again = ocm(p.laptop, "pull")
    assert again.returncode == 0 and "switched" not in again.stdout


def _on_a_terminal(ocm: Cli, cwd: Path, *args: str) -> tuple[int, str, str]:
    """``ocm`` with its stderr on a pseudo-terminal, as a person runs it: (exit code, its
    stdout, what the terminal showed)."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.Popen(
            ocm_command(*args),
            cwd=cwd,
            env=ocm.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
    finally:
        os.close(terminal)
    shown = read_until_closed(controller)
    stdout, _ = process.communicate(timeout=120)
    return process.returncode, stdout, shown.decode(errors="replace")


def test_on_a_terminal_both_ways_show_their_phases_bytes_and_time(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    p = pushed("proj")
    (p.laptop / "data.bin").write_bytes(os.urandom(2 << 20))
    code, stdout, shown = _on_a_terminal(ocm, p.laptop, "push")
    assert code == 0 and stdout.startswith("ocm: pushed proj"), (stdout, shown)
    assert re.search(r"sending to proj: [\d.]+ MB, [\d.]+ [KM]?B/s, \d+ s", shown), shown
    checking = r"the Manager is checking the pack and switching the work tree \.\.\. \d+ s"
    assert re.search(checking, shown), shown

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(p.laptop), str(other))
    git(other, "remote", "set-url", "origin", git(p.laptop, "remote", "get-url", "origin"))
    code, stdout, shown = _on_a_terminal(ocm, other, "pull")
    assert code == 0 and stdout.startswith("ocm: pulled proj"), (stdout, shown)
    assert re.search(r"receiving proj: [\d.]+ MB, [\d.]+ [KM]?B/s, \d+ s", shown), shown
    assert re.search(r"\rchecking the pack and switching the work tree \.\.\. \d+ s", shown), shown
    assert (other / "data.bin").read_bytes() == (p.laptop / "data.bin").read_bytes()


def test_ctrl_c_while_git_hashes_the_checkout_leaves_no_temporary_index(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """Ctrl-C reaches ocm and git alike. ocm must wait for the thread that runs git before it
    exits, or that thread's temporary index stays in .git (Python 3.11's Thread.join,
    interrupted, lets a second join return while the thread still runs)."""
    p = pushed("proj")
    (p.laptop / "wip.txt").write_text("uncommitted\n")
    marker = tmp_path / "hashing"
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    # update-index that has begun writing the throw-away index and ends a moment after
    # Ctrl-C, as git does when it is in the middle of a large file.
    (bin_dir / "git").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" update-index "*)\n'
        "  trap '' INT\n"
        '  : > "$GIT_INDEX_FILE"\n'
        f"  : > {marker}\n"
        "  sleep 2\n"
        "  exit 1;;\n"
        "esac\n"
        f'exec {shutil.which("git")} "$@"\n'
    )
    (bin_dir / "git").chmod(0o755)
    env = ocm.env() | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        ocm_command("push"),
        cwd=p.laptop,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,
    )
    assert wait_until(marker.exists, timeout=60), process.communicate(timeout=60)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr == "ocm: interrupted\n", (stdout, stderr)
    assert sorted(path.name for path in (p.laptop / ".git").glob("ocm-index-*")) == []
    assert not (p.directory / "wip.txt").exists()


def test_outside_a_repo_and_before_the_first_commit(ocm: Cli, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for command in ("push", "pull"):
        done = ocm(plain, command)
        assert done.returncode == 1
        assert "not inside a git repository" in _one_error_line(done.stderr)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "main")
    git(fresh, "remote", "add", "origin", "https://example.invalid/o/fresh.git")
    (fresh / "a.txt").write_text("not committed\n")
    done = ocm(fresh, "push", "--create", "--yes")
    assert done.returncode == 1
    assert "no commit yet" in _one_error_line(done.stderr)
    assert ocm.repos(fresh) == []


def test_a_transfer_waits_out_the_managers_moment_of_index_refresh(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """After a push of many files the Manager refreshes the repo's index under its lock
    (``settle_index``); a push or pull that arrives meanwhile waits for it instead of
    failing as "in progress". A lock held by another transfer still refuses at once."""
    p = pushed("proj")
    mark = p.directory / ".git" / f"{receive.SETTLING_NAME}.test"
    done: list[subprocess.CompletedProcess[str]] = []

    def hold_while(action: Callable[[], None], seconds: float, settling: bool) -> None:
        held = threading.Event()

        def hold() -> None:
            with receive.repo_lock(p.directory):
                if settling:
                    mark.touch()
                held.set()
                time.sleep(seconds)
                mark.unlink(missing_ok=True)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(5)
        try:
            action()
        finally:
            holder.join()

    (p.laptop / "README.md").write_text("# proj\npushed while the index settles\n")
    hold_while(lambda: done.append(ocm(p.laptop, "push")), 1.5, settling=True)
    assert done[-1].returncode == 0, done[-1].stderr
    assert tree_listing(p.directory) == tree_listing(p.laptop)

    (p.directory / "src/app.py").write_text("print('agent')\n")
    hold_while(lambda: done.append(ocm(p.laptop, "pull")), 1.5, settling=True)
    assert done[-1].returncode == 0, done[-1].stderr
    assert (p.laptop / "src/app.py").read_text() == "print('agent')\n"

    (p.laptop / "README.md").write_text("# proj\npushed during another transfer\n")
    hold_while(lambda: done.append(ocm(p.laptop, "push")), 3, settling=False)
    assert done[-1].returncode == 1
    assert "in progress" in _one_error_line(done[-1].stderr)


def _unlink_then(pause: float, done: threading.Event) -> Callable[..., None]:
    """``Path.unlink`` that says when it has unlinked, then takes ``pause`` seconds."""
    unlink = Path.unlink

    def slow_unlink(self: Path, *args: Any, **kwargs: Any) -> None:
        unlink(self, *args, **kwargs)
        done.set()
        time.sleep(pause)

    return slow_unlink


def test_a_transfer_meeting_the_end_of_a_settling_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settling took its mark down a moment before it let go of the lock: a transfer
    whose first look fell in that moment met a lock held with no mark, and was refused as
    "in progress" (seen in full runs: a test taking the lock right after a push's answer).
    Here the moment after the mark goes is drawn out to 0.2 s: the lock is let go first
    now, so the transfer finds it free."""
    (tmp_path / ".git").mkdir()
    unlinked = threading.Event()

    def settle() -> None:
        with receive.settling(tmp_path):
            monkeypatch.setattr(Path, "unlink", _unlink_then(0.2, unlinked))

    settler = threading.Thread(target=settle)
    settler.start()
    try:
        assert unlinked.wait(5)
        with receive.repo_lock(tmp_path):
            pass
    finally:
        settler.join()
    assert receive.settling_marks(tmp_path) == []


def test_a_settling_turned_away_leaves_the_mark_of_the_one_that_holds(tmp_path: Path) -> None:
    """Two settlings at once (a push's refresh, a pull's sizing): the one turned away took
    down the one mark they shared, and a transfer behind the other was refused as "in
    progress" instead of waiting for it. Each has a mark of its own now."""
    (tmp_path / ".git").mkdir()
    held, go = threading.Event(), threading.Event()

    def settle() -> None:
        with receive.settling(tmp_path):
            held.set()
            go.wait(5)

    settler = threading.Thread(target=settle)
    settler.start()
    try:
        assert held.wait(5)
        with pytest.raises(receive.Busy), receive.settling(tmp_path):
            pass
        assert len(receive.settling_marks(tmp_path)) == 1
        threading.Timer(0.3, go.set).start()
        with receive.repo_lock(tmp_path):
            assert go.is_set()
    finally:
        go.set()
        settler.join()
    assert receive.settling_marks(tmp_path) == []


def test_a_transfer_meeting_the_start_of_a_settling_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settling took the lock and then put its mark up: a transfer in between met a lock
    held with no mark, and was refused as "in progress" (seen in a full run: a test taking
    the lock right after a push's answer). Here that moment is drawn out to 0.2 s: the
    mark goes up first now, so the transfer finds the lock free, or the mark up."""
    (tmp_path / ".git").mkdir()
    touch = Path.touch
    touching = threading.Event()
    outcome: list[str] = []

    def slow_touch(self: Path, *args: Any, **kwargs: Any) -> None:
        touching.set()
        time.sleep(0.2)
        touch(self, *args, **kwargs)

    def settle() -> None:
        try:
            with receive.settling(tmp_path):
                time.sleep(0.1)
            outcome.append("settled")
        except receive.Busy:  # the transfer came first: a settling is tried again later
            outcome.append("busy")

    monkeypatch.setattr(Path, "touch", slow_touch)
    settler = threading.Thread(target=settle)
    settler.start()
    try:
        assert touching.wait(5)
        time.sleep(0.1)
        with receive.repo_lock(tmp_path):
            pass
    finally:
        settler.join()
    assert outcome in (["settled"], ["busy"])
    assert receive.settling_marks(tmp_path) == []


def _sized(p: Pushed) -> dict[str, object]:
    """The Manager's record of the tree it last sent, once it has written it."""
    marker = p.directory / ".git" / "ocm-mirror.json"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sized = json.loads(marker.read_text()).get(checks.SIZED_KEY)
        if sized:
            return dict(sized)
        time.sleep(0.05)
    raise AssertionError(f"no {checks.SIZED_KEY!r} record in {marker}")


def test_after_a_pull_the_next_push_is_sized_from_what_the_manager_sent(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """After a pull the Manager records the bytes of the tree it sent, as a full count of
    its blobs gives them, and the next push's size check starts from that record."""
    p = pushed("proj")
    (p.directory / "agent.bin").write_bytes(b"a" * 50_000)
    (p.directory / "README.md").write_text("an agent's edit\n")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    sized = _sized(p)
    sent = git(p.directory, "rev-parse", "refs/ocm/snapshot^{tree}")
    listing = git(p.directory, "ls-tree", "-r", "-l", sent).splitlines()
    assert sized == {"tree": sent, "bytes": sum(int(line.split()[3]) for line in listing)}

    marker = p.directory / ".git" / "ocm-mirror.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, checks.SIZED_KEY: {**sized, "bytes": 10**15}}))
    (p.laptop / "README.md").write_text("the laptop's edit\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 1 and "more than the receiver accepts" in done.stderr, done.stderr
    assert (p.directory / "README.md").read_text() == "an agent's edit\n"

    for damaged in ("not a record", {"tree": 5, "bytes": "many"}):  # sized without it
        marker.write_text(json.dumps({**record, checks.SIZED_KEY: damaged}))
        (p.laptop / "README.md").write_text(f"the laptop's edit over {damaged!r}\n")
        done = ocm(p.laptop, "push")
        assert done.returncode == 0, done.stderr
        assert (p.directory / "README.md").read_text() == f"the laptop's edit over {damaged!r}\n"

    (p.laptop / "README.md").write_text("the laptop's edit\n")
    marker.write_text(json.dumps(record))  # as received: sized from the last push
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert checks.SIZED_KEY not in json.loads(marker.read_text())
    assert tree_listing(p.directory) == tree_listing(p.laptop)


def test_the_manager_repacks_a_repo_that_only_receives_pushes(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """Every push leaves a pack on the Manager, and the mirror's git never runs gc itself:
    after a push the Manager runs git's own ``gc --auto``, by the repo's settings."""
    p = pushed("proj")
    git(p.directory, "config", "gc.autoPackLimit", "3")
    git(p.directory, "config", "gc.autoDetach", "false")  # in the Manager's thread, not away
    packs = p.directory / ".git" / "objects" / "pack"
    for n in range(5):
        (p.laptop / "README.md").write_text(f"push {n}\n")
        done = ocm(p.laptop, "push")
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while len(list(packs.glob("*.pack"))) > 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    # Without gc, a pack for the first push and one for each of these five.
    assert len(list(packs.glob("*.pack"))) <= 3
    git(p.directory, "fsck", "--no-dangling")
    assert tree_listing(p.directory) == tree_listing(p.laptop)
    (p.laptop / "README.md").write_text("after the repack\n")
    assert ocm(p.laptop, "push").returncode == 0
    assert (p.directory / "README.md").read_text() == "after the repack\n"
