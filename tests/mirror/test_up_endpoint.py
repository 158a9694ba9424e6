"""The receiving endpoint under attack and under failure: nothing changes but the verdict."""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from ocm.mirror import receive as receive_mod
from ocm.mirror import swap
from ocm.mirror.select import MARKER_NAME
from tests.mirror import hostile
from tests.mirror.conftest import Pushed, push_new
from tests.mirror.helpers import pack_bytes, post_up, repo_listing, transfer, tree_listing
from tests.support.git import git
from tests.support.processes import Cli, RunningManager


def _push(
    manager_factory: Callable[..., RunningManager],
    tmp_path: Path,
    *serve: str,
) -> tuple[RunningManager, Pushed]:
    manager = manager_factory("--no-opencode", *serve)
    return manager, push_new(Cli(manager), tmp_path / "laptop" / "proj")


# OSC 52 (write the clipboard), clear the screen, read the rest reversed.
ESCAPES = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\u202e"


def _hostile_cases(laptop: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (pack, snapshot commit): each one a push the Manager must refuse whole."""
    r = laptop
    cases: dict[str, tuple[bytes, str]] = {}

    def add(name: str, work_tree: str, index_tree: str | None = None) -> None:
        commit = hostile.snapshot_commit(r, work_tree, index_tree)
        cases[name] = (hostile.pack_of(r, commit), commit)

    hook = b"#!/bin/sh\ntouch /tmp/ocm-hostile-hook\n"
    add("dot-dot", hostile.tree(r, [hostile.Item("100644", "..", hostile.blob(r, b"x"))]))
    add("nested .git", hostile.files_tree(r, {"sub/.git/hooks/post-checkout": hook}))
    add(".GIT at the top", hostile.files_tree(r, {".GIT/hooks/post-checkout": hook}))
    add(".git as NTFS spells it", hostile.files_tree(r, {"git~1/config": b"x"}))
    # A Mac's disk ignores some code points in names: this is .git there.
    add(".git as HFS+ spells it", hostile.files_tree(r, {".g\u200cit/hooks/post-checkout": hook}))
    # A symlink may point anywhere (git's own rule); a path written through one may not.
    add(
        "write through an absolute symlink (case-folded)",
        hostile.files_tree(r, {"etc/cron.d/x": b"written through"}, {"ETC": "/etc"}),
    )
    add(
        "write through a symlink leaving (case-folded)",
        hostile.files_tree(r, {"src/up/x": b"written through"}, {"src/UP": "../../.."}),
    )
    # The symlink is named in the refusal, and the refusal in the Manager's log.
    add(
        "write through a symlink named with escapes",
        hostile.files_tree(r, {f"{ESCAPES}d/x": b"written through"}, {f"{ESCAPES}D": "src"}),
    )
    add("symlink target with a NUL", hostile.files_tree(r, {"a": b"a"}, {"nul": "/etc\0x"}))
    add(
        "write through a symlink (another Unicode form)",
        hostile.files_tree(r, {"cafe\u0301/x": b"written through"}, {"caf\u00e9": "src"}),
    )
    # A device file (SPEC §6) has no git mode of its own: the nearest is a mode git never
    # writes, which fsck and the checks refuse.
    add("device-like mode", hostile.tree(r, [hostile.Item("020644", "dev", hostile.blob(r, b""))]))
    # Longer than any file system takes as a target (Linux: 4,095 bytes).
    add("symlink target too long", hostile.files_tree(r, {"a": b"a"}, {"far": "x/" * 2500}))
    add(".gitmodules symlink", hostile.files_tree(r, {}, {".gitmodules": "README.md"}))
    add(
        ".gitmodules option injection",
        hostile.files_tree(
            r, {".gitmodules": b'[submodule "x"]\n path = x\n url = -oProxyCommand=true\n'}
        ),
    )
    add(
        "index with .git",
        hostile.files_tree(r, {"a": b"a"}),
        hostile.files_tree(r, {".git/x": b""}),
    )
    ghost_tree = hostile.tree(r, [hostile.Item("100644", "ghost", "0" * 39 + "1")])
    ghost = hostile.snapshot_commit(r, ghost_tree)
    index_commit = git(r, "rev-parse", f"{ghost}^2")
    cases["snapshot names an object the pack lacks"] = (
        hostile.pack_listed(r, [ghost, ghost_tree, index_commit]),
        ghost,
    )
    add(
        "too many objects",
        hostile.files_tree(r, {f"many/{n}": f"{n}".encode() for n in range(300)}),
    )
    add("pack bomb", hostile.files_tree(r, {"zeros": b"\0" * (3 << 20)}))
    assert len(cases["pack bomb"][0]) < 200_000  # small on the wire, 3 MB once written

    good = hostile.snapshot_commit(r, hostile.files_tree(r, {"fine": b"fine"}))
    good_pack = hostile.pack_of(r, good)
    cases["snapshot not in the pack"] = (good_pack, "ab" * 20)
    cases["snapshot is a blob"] = (hostile.pack_of(r, good), hostile.blob(r, b"just a blob"))
    plain = git(r, "commit-tree", "-p", "HEAD", "-m", "plain", "HEAD^{tree}")
    cases["snapshot is a plain commit"] = (hostile.pack_of(r, plain), plain)
    corrupt = bytearray(good_pack)
    corrupt[len(corrupt) // 2] ^= 0xFF
    cases["corrupt pack"] = (bytes(corrupt), good)
    cases["truncated pack"] = (good_pack[: len(good_pack) - 30], good)
    cases["not a pack"] = (b"hello world\n", good)

    # A thin pack whose deltas lean on a commit the Manager never saw.
    (r / "big.txt").write_text("line\n" * 5000)
    git(r, "add", "big.txt")
    git(r, "commit", "-q", "-m", "big")
    base = git(r, "rev-parse", "HEAD")
    (r / "big.txt").write_text("line\n" * 5000 + "one more\n")
    git(r, "commit", "-q", "-am", "bigger")
    thin_snapshot = hostile.snapshot_commit(r, git(r, "rev-parse", "HEAD^{tree}"))
    cases["thin pack on objects the Manager lacks"] = (
        hostile.pack_of(r, thin_snapshot, f"^{base}", thin=True),
        thin_snapshot,
    )
    git(r, "reset", "-q", "--hard", "HEAD~2")
    return cases


def test_hostile_packs_get_400_and_change_nothing(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    manager, p = _push(
        manager_factory,
        tmp_path,
        "--max-archive-members",
        "250",
        "--max-archive-bytes",
        str(2 << 20),
    )
    cases = _hostile_cases(p.laptop)
    before = repo_listing(p.directory)
    for name, (body, commit) in cases.items():
        response = post_up(manager, p.repo_id, body, commit, headBranch="main", force="1")
        assert response.status_code == 400, (name, response.status_code, response.text)
        error = response.json()
        assert error["error"] in {"bad_pack", "pack_incomplete", "too_large"}, (name, error)
        assert error["message"], name
        assert repo_listing(p.directory) == before, name
        assert not list((manager.data_dir / "staging").iterdir()), name
    assert not Path("/tmp/ocm-hostile-hook").exists()
    # The log is read on a terminal: what a client chose shows there as escapes.
    log = manager.log()
    assert "\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\u202eD" in log
    assert not any(char in log for char in "\x1b\x07\u202e")
    good = hostile.snapshot_commit(p.laptop, hostile.files_tree(p.laptop, {"fine": b"x"}))
    for branch in ("../escape", "a..b", "-x", "with space", "x/", "a//b", "x.lock", "a@{1}"):
        response = post_up(
            manager, p.repo_id, hostile.pack_of(p.laptop, good), good, headBranch=branch
        )
        assert response.status_code == 400, (branch, response.text)
        assert repo_listing(p.directory) == before, branch


@pytest.mark.parametrize(
    ("files", "said"),
    [
        # 103 characters, as a Mac's disk counts them, so it takes the name; 303 bytes.
        (
            {"长" * 100 + ".md": b"x"},
            "names of up to {name_max} bytes, and the incoming "
            "snapshot holds one of 303 (" + "长" * 40 + "…",
        ),
        (
            {"/".join(["d" * 200] * 25) + "/f": b"x"},
            "paths of up to {path_max} bytes, and the "
            "incoming snapshot holds one of 5026 (" + "d" * 40 + "…",
        ),
    ],
    ids=["name", "path"],
)
def test_a_name_or_path_too_long_for_the_managers_disk_gets_409_and_changes_nothing(
    ocm: Cli, pushed: Callable[..., Pushed], files: dict[str, bytes], said: str
) -> None:
    """A Mac's disk takes names of 255 characters, Linux' of 255 bytes: before, the push
    failed with a 500 and git's line about a staging path."""
    p = pushed()
    commit = hostile.snapshot_commit(p.laptop, hostile.files_tree(p.laptop, files))
    before = repo_listing(p.directory)
    response = post_up(
        ocm.manager, p.repo_id, hostile.pack_of(p.laptop, commit), commit, headBranch="main"
    )
    assert response.status_code == 409, response.text
    error = response.json()
    assert error["error"] == "name_not_taken"
    limits = {
        "name_max": os.pathconf(p.directory, "PC_NAME_MAX"),
        "path_max": os.pathconf(p.directory, "PC_PATH_MAX") - 1,
    }
    assert error["message"].startswith(
        "The Manager's copy of proj is on a file system that takes " + said.format(**limits)
    ), error["message"]
    assert error["message"].endswith(
        "; nothing was changed; rename it where the snapshot came from, then run the command again"
    )
    assert repo_listing(p.directory) == before
    assert not list((ocm.manager.data_dir / "staging").iterdir())


def test_a_client_of_another_wire_format_is_told_which_side_to_upgrade(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    before = repo_listing(p.directory)
    auth = {"Authorization": f"Bearer {ocm.manager.token}"}
    base = f"{ocm.manager.url}/api/internal/repo-mirror/{p.repo_id}"
    # A format-1 client: a tar body and no version.
    response = requests.post(f"{base}/up", data=b"x" * 1024, headers=auth, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"] == "mirror_version"
    assert "upgrade ocm on the client" in response.json()["message"]
    response = requests.get(f"{base}/down", params={"v": "1"}, headers=auth, timeout=30)
    assert response.status_code == 400 and "upgrade ocm" in response.json()["message"]
    response = requests.get(f"{base}/down", params={"v": "3"}, headers=auth, timeout=30)
    assert response.status_code == 400 and "upgrade the Manager" in response.json()["message"]
    assert repo_listing(p.directory) == before


def test_a_sender_label_is_checked_and_cut_short(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    # The client names itself ("host:/path") for the console and the receiver's reflog.
    p = pushed("proj")
    (p.laptop / "README.md").write_text("changed\n")
    git(p.laptop, "commit", "-qam", "move the branch")
    body, outgoing = pack_bytes(p.laptop, [git(p.directory, "rev-parse", "HEAD")])
    before = repo_listing(p.directory)

    def push_from(label: str) -> requests.Response:
        params = {"headBranch": "main", "from": label}
        return post_up(ocm.manager, p.repo_id, body, outgoing.snapshot.commit, **params)

    # A NUL no git argument can hold: 500 after the switch had begun (and was undone).
    response = push_from("a\0b")
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")
    assert repo_listing(p.directory) == before
    # A label of 100,000 characters went whole into the reflog, the record and the console.
    response = push_from("x" * 100_000)
    assert response.status_code == 200, response.text
    assert (
        git(p.directory, "reflog", "-1", "--format=%gs") == "ocm: mirrored from " + "x" * 299 + "…"
    )
    marker = json.loads((p.directory / ".git" / MARKER_NAME).read_text())
    assert marker["from"] == "x" * 299 + "…"
    url = ocm.manager.url
    signed_in = requests.post(
        f"{url}/signin", data={"token": ocm.manager.token}, headers={"Origin": url}, timeout=10
    )
    console = requests.get(f"{url}/repos?format=json", cookies=signed_in.history[0].cookies)
    assert console.json()["repos"][0]["lastPush"]["from"] == "x" * 299 + "… (127.0.0.1)"


def test_busy_repo_answers_409_at_once(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    p = pushed("proj")
    before = repo_listing(p.directory)
    body, outgoing = pack_bytes(p.laptop)
    with receive_mod.repo_lock(p.directory):
        response = post_up(
            ocm.manager, p.repo_id, body, outgoing.snapshot.commit, headBranch="main", force="1"
        )
    assert response.status_code == 409
    assert response.json()["error"] == "busy"
    assert repo_listing(p.directory) == before


def test_two_pushes_at_once_one_wins_one_409(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    p = pushed("proj")
    laptops = [p.laptop, tmp_path / "laptop2"]
    git(tmp_path, "clone", "-q", str(p.laptop), str(laptops[1]))
    git(laptops[1], "remote", "set-url", "origin", git(p.laptop, "remote", "get-url", "origin"))
    for n, laptop in enumerate(laptops):
        (laptop / "who.txt").write_text(f"laptop {n}\n")
        git(laptop, "add", "who.txt")
        git(laptop, "commit", "-q", "-m", f"from laptop {n}")
        for k in range(200):  # enough work that the two can overlap
            (laptop / f"bulk/{n}-{k}.txt").parent.mkdir(exist_ok=True)
            (laptop / f"bulk/{n}-{k}.txt").write_text(f"{k}\n" * 100)
    results: dict[int, object] = {}

    def run(n: int) -> None:
        results[n] = ocm(laptops[n], "push")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(results[n].returncode for n in range(2))  # type: ignore[attr-defined]
    assert codes == [0, 1], {n: results[n].stderr for n in range(2)}  # type: ignore[attr-defined]
    winner = next(n for n in range(2) if results[n].returncode == 0)  # type: ignore[attr-defined]
    loser = results[1 - winner]
    # Refused while the winner's push runs, or after it, because the Manager then has
    # commits the loser lacks (and, since the Manager counts only the state a pusher says it
    # shares, the winner's files as changes of its own: "both sides changed"): either way
    # with a way forward, never a half-merged repo.
    refusals = ("in progress", "lacks", "has new commits", "both sides changed")
    assert any(word in loser.stderr for word in refusals), loser.stderr  # type: ignore[attr-defined]
    assert tree_listing(p.directory) == tree_listing(laptops[winner])
    assert git(p.directory, "rev-parse", "HEAD") == git(laptops[winner], "rev-parse", "HEAD")


def test_manager_killed_mid_upload_leaves_repo_as_before(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    manager, p = _push(manager_factory, tmp_path)
    (p.laptop / "README.md").write_text("never arrives\n")
    before = repo_listing(p.directory)
    body, outgoing = pack_bytes(p.laptop)
    sent_half = threading.Event()
    hold = threading.Event()

    def slow_body():  # type: ignore[no-untyped-def]
        yield body[: len(body) // 2]
        sent_half.set()
        hold.wait(30)
        yield body[len(body) // 2 :]

    failures: list[BaseException] = []

    def upload() -> None:
        try:
            post_up(manager, p.repo_id, slow_body(), outgoing.snapshot.commit, headBranch="main")
        except requests.RequestException as exc:
            failures.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    assert sent_half.wait(30)
    manager.stop(signal.SIGKILL)
    hold.set()
    thread.join(30)
    assert failures  # the upload did not go through
    restarted = manager_factory("--no-opencode", data_dir=manager.data_dir, token=manager.token)
    assert repo_listing(p.directory) == before
    assert not list((restarted.data_dir / "staging").iterdir())


def test_crash_mid_switch_is_undone_when_the_manager_starts(
    manager_factory: Callable[..., RunningManager], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, p = _push(manager_factory, tmp_path)
    manager.stop()
    (p.laptop / "README.md").write_text("half switched\n")
    (p.laptop / "more.txt").write_text("more\n")
    git(p.laptop, "add", "-A")
    git(p.laptop, "commit", "-q", "-m", "more")
    before = repo_listing(p.directory)

    class Crash(BaseException):
        pass

    real_apply = swap.apply

    def crash_half_way(work: Path, root: Path, plan: swap.Plan) -> None:
        real_apply(work, root, swap.Plan(ops=plan.ops[: len(plan.ops) // 2 + 1]))
        raise Crash

    monkeypatch.setattr(swap, "apply", crash_half_way)
    monkeypatch.setattr(receive_mod, "_undo", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        transfer(p.laptop, p.directory, manager.data_dir)  # staging = data_dir/staging
    monkeypatch.undo()
    assert repo_listing(p.directory) != before
    restarted = manager_factory("--no-opencode", data_dir=manager.data_dir, token=manager.token)
    assert repo_listing(p.directory) == before
    assert not list((restarted.data_dir / "staging").iterdir())
    assert "cleaned 1 interrupted transfer" in restarted.log()


def test_full_disk_is_a_clear_error_and_changes_nothing(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """RLIMIT_FSIZE on the Manager process: writing a file past 1 MB fails like a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        manager, p = _push(manager_factory, tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    before = repo_listing(p.directory)
    (p.laptop / "big.bin").write_bytes(b"\0" * (4 << 20))  # a small pack, a 4 MB file
    body, outgoing = pack_bytes(p.laptop)
    response = post_up(
        manager, p.repo_id, body, outgoing.snapshot.commit, headBranch="main", force="1"
    )
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "no_space"
    assert "disk is full" in response.json()["message"]
    assert repo_listing(p.directory) == before
    assert not list((manager.data_dir / "staging").iterdir())


def test_a_push_that_skips_head_checks_the_limits_its_last_transfer_saw(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The everyday push does not ask ``/head``: it checks the Manager's limits as the last
    transfer recorded them, still before the first byte is sent."""
    manager, p = _push(manager_factory, tmp_path)
    marker_file = p.laptop / ".git" / MARKER_NAME
    marker = json.loads(marker_file.read_text())
    assert marker["limits"]["maxArchiveMembers"] > 100
    marker["limits"]["maxArchiveMembers"] = 100  # as if the Manager had said so
    marker_file.write_text(json.dumps(marker))
    for n in range(120):
        (p.laptop / f"many/{n}.txt").parent.mkdir(exist_ok=True)
        (p.laptop / f"many/{n}.txt").write_text(f"{n}\n")
    before = repo_listing(p.directory)
    done = Cli(manager)(p.laptop, "push")
    assert done.returncode == 1
    assert "more than the Manager accepts (100)" in done.stderr, done.stderr
    assert repo_listing(p.directory) == before


def test_limits_that_are_not_numbers_in_the_marker_are_not_gone_by(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """A marker edited by hand (or damaged) with limits that are not numbers ended the push
    in "unexpected error (TypeError)"; such a limit is none to go by (the Manager checks
    its own anyway), and limits that are no mapping at all make the push ask ``/head``."""
    manager, p = _push(manager_factory, tmp_path)
    marker_file = p.laptop / ".git" / MARKER_NAME
    for n, limits in enumerate(
        ({"maxArchiveMembers": [1], "maxArchiveBytes": "abc"}, {"maxArchiveBytes": True}, [1])
    ):
        marker = json.loads(marker_file.read_text())
        marker["limits"] = limits
        marker_file.write_text(json.dumps(marker))
        (p.laptop / "README.md").write_text(f"# proj\nedit {n}\n")
        done = Cli(manager)(p.laptop, "push")
        assert done.returncode == 0, done.stderr
        assert (p.directory / "README.md").read_text() == f"# proj\nedit {n}\n"


def _blob_bytes(root: Path, tree: str) -> int:
    """The bytes the files of ``tree`` take, as ``git ls-tree -l`` gives them."""
    listing = git(root, "ls-tree", "-r", "-l", tree).splitlines()
    return sum(int(line.split()[3]) for line in listing)


def test_a_push_is_sized_from_the_last_push_and_what_changed_since(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """A push checks the bytes it would send against the Manager's limit by what its last
    push recorded and the blobs that changed since, not by a look at every file. Without
    that record, or when more than a sixth of the files changed, it looks at every file."""
    manager, p = _push(manager_factory, tmp_path)
    ocm = Cli(manager)
    marker_file = p.laptop / ".git" / MARKER_NAME
    for n in range(60):  # enough files for one change to be sized from the record
        (p.laptop / "notes" / f"{n}.txt").parent.mkdir(exist_ok=True)
        (p.laptop / "notes" / f"{n}.txt").write_text(f"note {n}\n")
    (p.laptop / "big.bin").write_bytes(b"b" * 30_000)
    (p.laptop / "README.md").unlink()
    assert ocm(p.laptop, "push").returncode == 0
    marker = json.loads(marker_file.read_text())
    assert marker["bytes"] == _blob_bytes(p.laptop, marker["snapshot"])

    limit = marker["limits"]["maxArchiveBytes"]
    marker_file.write_text(json.dumps({**marker, "bytes": limit}))  # a forged record
    (p.laptop / "big.bin").write_bytes(b"c" * 30_001)
    before = repo_listing(p.directory)
    done = ocm(p.laptop, "push")
    assert done.returncode == 1
    assert f"{limit + 1} bytes to send, more than the Manager accepts" in done.stderr
    assert repo_listing(p.directory) == before

    for n in range(20):  # many changes: the files are counted, the record is not used
        (p.laptop / "notes" / f"{n}.txt").write_text(f"note {n}, longer\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "big.bin").read_bytes() == b"c" * 30_001
    marker = json.loads(marker_file.read_text())
    assert marker["bytes"] == _blob_bytes(p.laptop, marker["snapshot"])

    (p.laptop / "big.bin").write_bytes(b"d" * 30_002)
    marker_file.write_text(json.dumps({**marker, "bytes": "many"}))  # counted without it
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "big.bin").read_bytes() == b"d" * 30_002
    marker = json.loads(marker_file.read_text())
    assert marker["bytes"] == _blob_bytes(p.laptop, marker["snapshot"])  # a sum kept exact


def test_client_refuses_before_sending_what_the_manager_would_refuse(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    manager, p = _push(manager_factory, tmp_path)
    manager.stop()
    limited = manager_factory(
        "--no-opencode",
        "--max-archive-members",
        "100",
        data_dir=manager.data_dir,
        token=manager.token,
    )
    for n in range(120):
        (p.laptop / f"many/{n}.txt").parent.mkdir(exist_ok=True)
        (p.laptop / f"many/{n}.txt").write_text(f"{n}\n")
    before = repo_listing(p.directory)
    done = Cli(limited)(p.laptop, "push", "--force")
    assert done.returncode == 1
    assert "more than the Manager accepts (100)" in done.stderr
    assert "--max-archive-members" in done.stderr
    assert repo_listing(p.directory) == before
