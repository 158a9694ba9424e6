"""The receiving endpoint under attack and under failure: nothing changes but the verdict."""

from __future__ import annotations

import io
import resource
import signal
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from ocm.mirror import receive as receive_mod
from ocm.mirror import swap
from ocm.mirror.archive import iter_pack
from ocm.mirror.send import prepare
from tests.mirror.conftest import Cli, Pushed
from tests.mirror.helpers import repo_listing, transfer, tree_listing
from tests.support.git import git
from tests.support.processes import RunningManager


def _up(manager: RunningManager, repo_id: int, body: object, **params: str) -> requests.Response:
    return requests.post(
        f"{manager.url}/api/internal/repo-mirror/{repo_id}/up",
        data=body,
        params=params,
        timeout=60,
        headers={"Authorization": f"Bearer {manager.token}"},
    )


def _push(
    manager_factory: Callable[..., RunningManager],
    tmp_path: Path,
    *serve: str,
) -> tuple[RunningManager, Pushed]:
    from tests.mirror.helpers import rich_repo

    manager = manager_factory("--no-opencode", *serve)
    cli = Cli(manager)
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    done = cli(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    return manager, Pushed(
        laptop, int(cli.repos(laptop)[0]["repoId"]), manager.data_dir / "repos" / "proj"
    )


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, None


HOSTILE: dict[str, list] = {
    "absolute path": [_file("/tmp/ocm-hostile-absolute")],
    "dot-dot": [_file("../ocm-hostile-dotdot")],
    "dot-dot inside": [_file("src/../../ocm-hostile-dotdot2")],
    "absolute symlink": [_special("etc-link", tarfile.SYMTYPE, "/etc")],
    "symlink leaving": [_special("src/up", tarfile.SYMTYPE, "../../..")],
    "write through symlink": [_special("d", tarfile.SYMTYPE, "src"), _file("d/x")],
    "hard link": [_special("hl", tarfile.LNKTYPE, "/etc/passwd")],
    "device": [_special("dev-null", tarfile.CHRTYPE)],
    "fifo": [_special("pipe", tarfile.FIFOTYPE)],
    "nested .git": [_file("sub/.git/hooks/post-checkout", b"#!/bin/sh\n")],
    "duplicate": [_file("twice"), _file("twice")],
    "too many members": [_file(f"many/{n}") for n in range(300)],
}


def _archive(laptop: Path, extra: list, *, gz: bool = False) -> bytes:
    """A real repo's archive with ``extra`` members appended."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(laptop / ".git", arcname=".git")
        tar.add(laptop / "README.md", arcname="README.md")
        for info, data in extra:
            tar.addfile(info, data)
    return buffer.getvalue()


def test_hostile_archives_get_400_and_change_nothing(
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
    (p.laptop / "README.md").write_text("would change\n")
    before = repo_listing(p.directory)
    bomb = _archive(p.laptop, [_file("zeros", b"\0" * (3 << 20))], gz=True)
    cases = {name: _archive(p.laptop, extra) for name, extra in HOSTILE.items()}
    cases.update(
        {
            "decompressed size over the limit": bomb,
            "not a tar": b"hello world\n",
            "truncated": _archive(p.laptop, [])[:5000],
        }
    )
    assert len(bomb) < 200_000
    for name, body in cases.items():
        response = _up(manager, p.repo_id, body, force="1")
        assert response.status_code == 400, (name, response.status_code, response.text)
        error = response.json()
        assert error["error"] in {"bad_archive", "archive_too_large"}, (name, error)
        assert error["message"], name
        assert repo_listing(p.directory) == before, name
        assert not list((manager.data_dir / "staging").iterdir()), name
    assert not Path("/tmp/ocm-hostile-absolute").exists()
    assert not (p.directory.parent / "ocm-hostile-dotdot").exists()


def test_busy_repo_answers_409_at_once(ocm: Cli, pushed: Callable[..., Pushed]) -> None:
    p = pushed("proj")
    before = repo_listing(p.directory)
    body = b"".join(iter_pack(p.laptop, prepare(p.laptop).names, compress=False))
    with receive_mod.repo_lock(p.directory):
        response = _up(ocm.manager, p.repo_id, body, force="1")
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
    assert "in progress" in loser.stderr or "lacks" in loser.stderr  # type: ignore[attr-defined]
    assert tree_listing(p.directory) == tree_listing(laptops[winner])
    assert git(p.directory, "rev-parse", "HEAD") == git(laptops[winner], "rev-parse", "HEAD")


def test_manager_killed_mid_upload_leaves_repo_as_before(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    manager, p = _push(manager_factory, tmp_path)
    (p.laptop / "README.md").write_text("never arrives\n")
    before = repo_listing(p.directory)
    body = b"".join(iter_pack(p.laptop, prepare(p.laptop).names, compress=False))
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
            _up(manager, p.repo_id, slow_body())
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
    body = _archive(p.laptop, [_file("big.bin", b"\0" * (4 << 20))], gz=True)
    response = _up(manager, p.repo_id, body, force="1")
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "no_space"
    assert "disk is full" in response.json()["message"]
    assert repo_listing(p.directory) == before
    assert not list((manager.data_dir / "staging").iterdir())


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
