"""The git-object wire format: what it costs, what it survives, and who must upgrade."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from ocm.api import ManagerClient
from ocm.commands import mirror as mirror_cmd
from ocm.mirror import pack, receive, send, wire
from tests.mirror.conftest import Pushed
from tests.mirror.helpers import repo_listing, tree_listing
from tests.support.git import git
from tests.support.http_server import serving
from tests.support.processes import Cli, ocm_command


def _sent(stdout: str) -> float:
    """Bytes a push or pull reports on its closing line ("..., 1.2 KB sent")."""
    match = re.search(r"([\d.]+) (B|KB|MB|GB) (sent|received)", stdout)
    assert match, stdout
    return float(match.group(1)) * 1024 ** ["B", "KB", "MB", "GB"].index(match.group(2))


def _history(root: Path, commits: int) -> None:
    """Commits that each add 64 KB nobody can compress: a history worth megabytes."""
    for n in range(commits):
        (root / f"history/{n}.bin").parent.mkdir(exist_ok=True)
        (root / f"history/{n}.bin").write_bytes(os.urandom(64 * 1024))
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"history {n}")


def test_a_small_change_costs_what_changed_not_what_the_repo_weighs(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    p = pushed("proj")
    _history(p.laptop, 40)  # ~2.6 MB of history
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) > 2_000_000

    (p.laptop / "README.md").write_text("# proj\none line more\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) < 4_000, done.stdout
    assert tree_listing(p.directory) == tree_listing(p.laptop)

    (p.directory / "src/app.py").write_text("print('an agent was here')\n")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) < 4_000, done.stdout
    assert (p.laptop / "src/app.py").read_text() == "print('an agent was here')\n"

    done = ocm(p.laptop, "push")  # nothing changed since: nothing to send
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) < 100, done.stdout


def test_uncommitted_work_already_pushed_does_not_travel_again(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The last snapshot is a sibling of the next one, not an ancestor: what it held must
    still count as had, or every uncommitted file travels again on each push and pull."""
    p = pushed("proj")
    for n in range(30):
        (p.laptop / f"wip-{n}.bin").write_bytes(os.urandom(8 * 1024))  # uncommitted, 240 KB
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) > 240_000

    (p.laptop / "README.md").write_text("# proj\none line more\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert _sent(done.stdout) < 8_000, done.stdout
    assert tree_listing(p.directory) == tree_listing(p.laptop)


def test_a_push_that_assumed_its_last_transfer_asks_the_manager_when_that_is_gone(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    """The everyday push skips ``/head``: its pack assumes the snapshot the last transfer
    left on the Manager. When the Manager no longer has it (ref deleted, objects pruned),
    that pack is refused as incomplete, and the push asks ``/head`` and sends what the
    Manager lacks (the uncommitted files again), not the whole history."""
    p = pushed("proj")
    _history(p.laptop, 20)  # ~1.3 MB of committed history: the Manager keeps it
    for n in range(10):
        (p.laptop / f"wip-{n}.bin").write_bytes(os.urandom(8 * 1024))  # only in the snapshot
    assert ocm(p.laptop, "push").returncode == 0
    git(p.directory, "update-ref", "-d", pack.SNAPSHOT_REF)
    git(p.directory, "reflog", "expire", "--expire=now", "--all")
    git(p.directory, "gc", "-q", "--prune=now")
    assert (p.directory / "wip-0.bin").read_bytes() == (p.laptop / "wip-0.bin").read_bytes()

    (p.laptop / "README.md").write_text("# proj\none line more\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert 80_000 < _sent(done.stdout) < 400_000, done.stdout
    assert tree_listing(p.directory) == tree_listing(p.laptop)


@pytest.mark.parametrize("change", ["delta", "link"])
def test_when_the_manager_lacks_what_the_push_assumed_it_sends_everything(
    ocm: Cli, pushed: Callable[..., Pushed], change: str
) -> None:
    """The Manager named tips, then lost them (history rewritten, repo replaced): the pack
    that leaned on them is refused as incomplete and the client sends a full one itself.
    It leans on them by a delta against a blob they hold, or by a link alone (the parent
    commit), which only ``index-pack --strict`` notices."""
    p = pushed("proj")
    if change == "delta":
        _history(p.laptop, 2)
    else:  # a commit of nothing: no object of it is a delta base for what follows
        git(p.laptop, "commit", "-q", "--allow-empty", "-m", "only here")
    only_here = git(p.laptop, "rev-parse", "HEAD")  # the Manager never saw it
    written = p.laptop / ("history/0.bin" if change == "delta" else "fresh.bin")
    written.write_bytes(os.urandom(64 * 1024))
    git(p.laptop, "add", ".")
    git(p.laptop, "commit", "-q", "-am", "after")
    outgoing = send.prepare(p.laptop)
    with ManagerClient(ocm.manager.url, ocm.manager.token) as client:
        head = mirror_cmd._head(client, p.repo_id, "main")
        head["tips"] = [only_here]
        result, sent = mirror_cmd._send(client, p.repo_id, {"from": "test"}, outgoing, head, "proj")
    assert result["head"] == git(p.laptop, "rev-parse", "HEAD")
    assert git(p.directory, "rev-parse", "HEAD") == result["head"]
    assert tree_listing(p.directory) == tree_listing(p.laptop)
    if change == "delta":
        assert sent > 128 * 1024  # the second, complete pack


def test_a_git_dir_symlink_leaving_the_repo_stops_nothing(
    ocm: Cli, pushed: Callable[..., Pushed], tmp_path: Path
) -> None:
    """``.git`` does not travel as files any more: ``.git/hooks -> /elsewhere`` on either
    side is nobody's business but that side's."""
    p = pushed("proj")
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    (shared / "post-checkout").write_text("#!/bin/sh\ntouch ran-a-hook\n")
    (shared / "post-checkout").chmod(0o755)
    for root in (p.laptop, p.directory):
        os.rename(root / ".git/hooks", root / ".git/hooks.orig")
        os.symlink(shared, root / ".git/hooks")
    (p.laptop / "README.md").write_text("pushed past a hooks link\n")
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    assert (p.directory / "README.md").read_text() == "pushed past a hooks link\n"
    (p.directory / "agent.txt").write_text("pulled past a hooks link\n")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "agent.txt").read_text() == "pulled past a hooks link\n"
    for root in (p.laptop, p.directory):
        assert os.readlink(root / ".git/hooks") == str(shared)
        assert not (root / "ran-a-hook").exists()


def test_a_push_while_git_gc_repacks_the_sender(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    p = pushed("proj")
    _history(p.laptop, 30)
    stop = threading.Event()
    runs: list[int] = []

    def gc_forever() -> None:
        while not stop.is_set():
            done = subprocess.run(
                ["git", "gc", "-q"],  # what `gc --auto` runs, minus the waiting
                cwd=p.laptop,
                capture_output=True,
            )
            runs.append(done.returncode)

    thread = threading.Thread(target=gc_forever)
    thread.start()
    try:
        for n in range(3):
            (p.laptop / "README.md").write_text(f"push {n} during gc\n")
            done = ocm(p.laptop, "push")
            assert done.returncode == 0, done.stderr
            assert tree_listing(p.directory) == tree_listing(p.laptop)
    finally:
        stop.set()
        thread.join(120)
    assert runs and all(code == 0 for code in runs), runs
    assert git(p.directory, "rev-parse", "HEAD") == git(p.laptop, "rev-parse", "HEAD")
    git(p.directory, "fsck", "--no-progress")


def test_pull_applies_its_own_limits(
    ocm: Cli, pushed: Callable[..., Pushed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Manager (hostile or not) cannot write more here than this machine allows."""
    p = pushed("proj")
    (p.directory / "huge.bin").write_bytes(b"\0" * (3 << 20))  # 3 MB, a few KB packed
    before = repo_listing(p.laptop)
    monkeypatch.setenv(mirror_cmd.PULL_MAX_BYTES_ENV, str(2 << 20))
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert "more than the receiver accepts" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert repo_listing(p.laptop) == before
    monkeypatch.setenv(mirror_cmd.PULL_MAX_BYTES_ENV, "")
    monkeypatch.setenv(mirror_cmd.PULL_MAX_OBJECTS_ENV, "2")
    done = ocm(p.laptop, "pull")
    assert done.returncode == 1
    assert "objects, more than the receiver accepts (2)" in done.stderr, done.stderr
    assert repo_listing(p.laptop) == before
    monkeypatch.delenv(mirror_cmd.PULL_MAX_OBJECTS_ENV)
    done = ocm(p.laptop, "pull")
    assert done.returncode == 0, done.stderr
    assert (p.laptop / "huge.bin").stat().st_size == 3 << 20


@pytest.mark.parametrize("parallel", [False, True], ids=["one by one", "git's parallel checkout"])
def test_a_pull_that_would_fill_the_disk_stops_and_changes_nothing(
    ocm: Cli, pushed: Callable[..., Pushed], parallel: bool
) -> None:
    """RLIMIT_FSIZE on ``ocm pull``: writing a file past 1 MB fails as on a full disk. From
    100 files and 8 MB on, git writes them in worker processes, and says that one died."""
    p = pushed("proj")
    (p.directory / "big.bin").write_bytes(b"\0" * (4 << 20))  # a small pack, a 4 MB file
    if parallel:
        (p.directory / "big2.bin").write_bytes(b"\1" * (5 << 20))
        for n in range(150):
            (p.directory / f"small{n}.txt").write_text(f"{n}\n")
    before = repo_listing(p.laptop)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))

    done = subprocess.run(
        ocm_command("pull"),
        cwd=p.laptop,
        env=ocm.env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        preexec_fn=small_files,
    )
    assert done.returncode == 1, done
    assert "disk is full" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert repo_listing(p.laptop) == before
    assert not list((p.laptop / ".git/ocm-staging").glob("*"))


def test_a_stalled_download_releases_the_repo_when_closed(
    ocm: Cli, pushed: Callable[..., Pushed]
) -> None:
    p = pushed("proj")
    # More than waitress buffers (16 MB) plus what both sockets' buffers may grow to: Linux
    # autotunes a receive buffer up to tcp_rmem's maximum (32 MB on this machine).
    (p.directory / "big.bin").write_bytes(os.urandom(128 << 20))
    url = f"{ocm.manager.url}/api/internal/repo-mirror/{p.repo_id}/down"
    auth = {"Authorization": f"Bearer {ocm.manager.token}"}
    response = requests.get(url, params={"v": "2"}, headers=auth, stream=True, timeout=60)
    assert response.status_code == 200
    # A reader that then stops reading. The iterator is kept: dropping it mid-body would
    # close the connection (urllib3 does on GeneratorExit), and the Manager, seeing that,
    # could release the lock before the push below asks for it.
    chunks = response.iter_content(4096)
    next(chunks)
    head_url = f"{ocm.manager.url}/api/internal/repo-mirror/{p.repo_id}/up"
    busy = requests.post(head_url, params={"v": "2"}, data=b"", headers=auth, timeout=30)
    assert busy.status_code == 409 and busy.json()["error"] == "busy", busy.text
    # Held by a pull, not a push: the message names neither wrongly.
    assert busy.json()["message"].startswith("another transfer to or from this repo"), busy.text
    response.close()  # the laptop goes away
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = requests.post(head_url, params={"v": "2"}, data=b"", headers=auth, timeout=30)
        if answer.json()["error"] != "busy":
            break
        time.sleep(0.2)
    assert answer.status_code == 400 and answer.json()["error"] == "bad_pack", answer.text
    (p.laptop / "README.md").write_text("pushed after the stalled pull\n")
    done = ocm(p.laptop, "push", "--force")
    assert done.returncode == 0, done.stderr


class _StandIn(BaseHTTPRequestHandler):
    """Another Manager at the edge of the test: an older one (its ``/head`` names no
    version), or a hostile one (its ``/down`` sends a pack of its choosing)."""

    origin = ""
    head: dict[str, object] = {}
    down: tuple[bytes, dict[str, str]] = (b"", {})
    seen: list[str] = []

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(f"GET {self.path}")
        if self.path.startswith("/api/internal/opencode-workspaces"):
            repo = {
                "repoId": 1,
                "name": "proj",
                "branch": "main",
                "cloneStatus": "ready",
                "directory": "/srv/proj",
                "originUrl": self.origin,
            }
            self._json(200, {"workspaces": [repo]})
        elif self.path.startswith("/api/internal/repo-mirror/1/head"):
            self._json(200, self.head)
        elif self.path.startswith("/api/internal/repo-mirror/1/down"):
            body, headers = self.down
            self._send(200, body, {"Content-Type": wire.PACK_TYPE, **headers})
        else:
            self._json(404, {"error": "not_found", "message": "no such thing"})

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(f"POST {self.path}")
        self._json(400, {"error": "bad_archive", "message": "the archive is corrupt"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    _StandIn.seen = []
    with serving(_StandIn) as url:
        yield url


def _run_ocm(url: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ocm_command(*args),
        cwd=cwd,
        env={**os.environ, "OPENCODE_MANAGER_URL": url, "OCM_TOKEN": "t" * 20, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_an_older_manager_is_named_as_the_side_to_upgrade(stand_in: str, tmp_path: Path) -> None:
    from tests.mirror.helpers import rich_repo

    laptop = rich_repo(tmp_path / "proj")
    _StandIn.origin = git(laptop, "remote", "get-url", "origin")
    _StandIn.head = {"head": "0" * 40, "branch": "main", "dirty": False, "inUse": False}
    before = repo_listing(laptop)
    for command in ("push", "pull"):
        done = _run_ocm(stand_in, laptop, command)
        assert done.returncode == 1, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "mirror format 1" in lines[0] and "upgrade the Manager" in lines[0], lines[0]
    assert not [line for line in _StandIn.seen if line.startswith("POST")]
    assert not [line for line in _StandIn.seen if "/down" in line]
    assert repo_listing(laptop) == before


def test_a_hostile_managers_pack_is_refused_by_the_laptop(stand_in: str, tmp_path: Path) -> None:
    """The laptop checks what a pull brings exactly as the Manager checks a push."""
    from tests.mirror import hostile
    from tests.mirror.helpers import rich_repo

    laptop = rich_repo(tmp_path / "proj")
    _StandIn.origin = git(laptop, "remote", "get-url", "origin")
    head = git(laptop, "rev-parse", "HEAD")
    _StandIn.head = {
        wire.VERSION_FIELD: wire.VERSION,
        "head": head,
        "branch": "main",
        "dirty": False,
        "inUse": False,
        "tips": [],
    }
    hook = b"#!/bin/sh\ntouch /tmp/ocm-hostile-pull-hook\n"
    trees = {
        "nested .git": hostile.files_tree(laptop, {"sub/.GIT/hooks/post-checkout": hook}),
        "written through a link leaving": hostile.files_tree(
            laptop, {"etc/passwd": b"x"}, {"ETC": "/etc"}
        ),
        "written through a link": hostile.files_tree(laptop, {"l/x": b"x"}, {"L": "src"}),
        "pack bomb": hostile.files_tree(laptop, {"zeros": b"\0" * (3 << 20)}),
    }
    cases = {}
    for name, tree in trees.items():
        commit = hostile.snapshot_commit(laptop, tree)
        cases[name] = (hostile.pack_of(laptop, commit, f"^{head}"), commit, "main")
    good = hostile.snapshot_commit(laptop, hostile.files_tree(laptop, {"a": b"a"}))
    good_pack = hostile.pack_of(laptop, good)
    cases["truncated"] = (good_pack[:-40], good, "main")
    cases["not a pack"] = (b"<html>a proxy's error page</html>", good, "main")
    # A sound pack, named on a branch git refuses, or one that is not a name at all.
    for branch in ("%FF%FE", "ma%00in", "..%2Fetc", "-f", "a..b"):
        cases[f"branch {branch}"] = (good_pack, good, branch)
    git(laptop, "reset", "-q", "--hard")
    subprocess.run(["git", "prune", "--expire=now"], cwd=laptop, check=True)  # forget them
    before = repo_listing(laptop)
    for name, (body, commit, branch) in cases.items():
        _StandIn.down = (body, {wire.SNAPSHOT_HEADER: commit, wire.QUOTED_BRANCH_HEADER: branch})
        done = _run_ocm(stand_in, laptop, "pull", "--force", OCM_PULL_MAX_BYTES=str(2 << 20))
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
        assert repo_listing(laptop) == before, name
        assert not list((laptop / ".git/ocm-staging").glob("*")), name
    assert not Path("/tmp/ocm-hostile-pull-hook").exists()


def test_the_snapshot_is_the_same_commit_while_nothing_changes(tmp_path: Path) -> None:
    from tests.mirror.helpers import rich_repo

    root = rich_repo(tmp_path / "proj")
    (root / "untracked.txt").write_text("untracked\n")
    (root / "README.md").write_text("changed\n")
    index_before = (root / ".git/index").read_bytes()
    refs_before = git(root, "for-each-ref")
    first = send.prepare(root).snapshot
    assert send.prepare(root).snapshot._replace(kept=None) == first._replace(kept=None)
    assert (root / ".git/index").read_bytes() == index_before  # the user's index untouched
    assert git(root, "for-each-ref") == refs_before and not git(root, "stash", "list")
    assert git(root, "rev-parse", f"{first.commit}^1") == git(root, "rev-parse", "HEAD")
    assert git(root, "show", f"{first.commit}:untracked.txt") == "untracked"
    assert git(root, "show", f"{first.commit}^2:README.md") == "# proj"  # the index's
    assert pack.present(root, [first.commit, "0" * 40, "not an id"]) == [first.commit]


def test_a_tag_named_like_the_branch_does_not_rename_what_travels(tmp_path: Path) -> None:
    """``git symbolic-ref --short`` says ``heads/main`` when a tag ``main`` exists too."""
    from tests.mirror.helpers import rich_repo

    root = rich_repo(tmp_path / "proj")
    git(root, "tag", "main")
    assert send.prepare(root).snapshot.branch == "main"
    git(root, "checkout", "-q", "--detach")
    assert send.prepare(root).snapshot.branch is None


@pytest.mark.parametrize("busy_for", [0.0, 2.5], ids=["repo idle", "repo busy when due"])
def test_a_push_of_many_files_leaves_the_managers_index_settled(
    ocm: Cli, pushed: Callable[..., Pushed], busy_for: float
) -> None:
    """Files without stat data in the index, or written in the same second as it ("racily
    clean"), are re-read by git on every look at the work tree: after a push that wrote
    many, the Manager refreshes its index after its answer and again once that second is
    over, leaving every entry's stat data trusted. A transfer holding the repo then (here:
    its lock, held as a pull would) only delays the refresh."""
    p = pushed("proj")
    for n in range(150):
        (p.laptop / "many" / f"{n}.txt").parent.mkdir(exist_ok=True)
        (p.laptop / "many" / f"{n}.txt").write_text(f"file {n}\n")
    git(p.laptop, "add", "many")  # in the index: only its entries can be racily clean
    done = ocm(p.laptop, "push")
    assert done.returncode == 0, done.stderr
    if busy_for:  # the second refresh is due 1.1 s after the answer
        with receive.repo_lock(p.directory):
            time.sleep(busy_for)
    written = [p.directory / "many" / f"{n}.txt" for n in range(150)]
    newest = max(int(path.stat().st_mtime) for path in written)

    def settled() -> bool:
        return int((p.directory / ".git/index").stat().st_mtime) > newest

    deadline = time.monotonic() + 15
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled()
    # diff-files trusts stat data and reads no file: an entry without it would be listed.
    assert git(p.directory, "diff-files", "--name-only") == ""
    assert git(p.directory, "status", "--porcelain") == git(p.laptop, "status", "--porcelain")


def test_the_names_a_snapshot_leaves_out_cross_the_wire_as_they_are() -> None:
    names = ["nested/", "odd;name", "ünï link", *(f"link-{n}" for n in range(4))]
    assert wire.unquote_names(wire.quote_names(names)) == (7, names[:5])
    for garbage in ("", "x;a", "٣;a", "9" * 5000 + ";a"):
        assert wire.unquote_names(garbage) == (0, [])
