"""Clones started from the console: git's progress while it runs, the error kept after."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from manager.registry import ERROR, READY, Registry
from manager.repos import MAX_LINE, RepoError, reserve_repo, run_clone
from manager.web.clones import CloneJobs
from tests.support.http_server import serving


def test_progress_lines_come_from_git_as_it_works(
    tmp_path: Path, git_repo: Callable[..., Path]
) -> None:
    registry = Registry(tmp_path / "manager.db")
    source = git_repo("big", files={f"f{n}.txt": f"{n}\n" * 50 for n in range(200)})
    repo = reserve_repo(registry, tmp_path / "repos", source.as_uri(), name=None)
    assert repo.status == "cloning"
    lines: list[str] = []
    done = run_clone(registry, repo, source.as_uri(), progress=lines.append)
    assert done.status == READY and done.branch == "main"
    assert any(line.startswith("Receiving objects:") for line in lines), lines
    assert (tmp_path / "repos" / "big" / "f199.txt").is_file()


def test_a_failed_console_clone_keeps_its_row_with_gits_message(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "manager.db")
    jobs = CloneJobs()
    repo_id = jobs.start(
        registry, tmp_path / "repos", str(tmp_path / "nowhere"), name="nowhere", branch=None
    )
    # The row turns 'error' before the clone's thread lets go of its progress line: wait
    # for the thread (started by start(), unless it has already ended), then look at both.
    for thread in threading.enumerate():
        if thread.name == "clone-nowhere":
            thread.join(30)
            assert not thread.is_alive(), "the clone never finished"
    repo = registry.get_repo(repo_id)
    assert repo is not None and repo.status == ERROR
    assert repo.error.startswith("git clone failed: ") and "nowhere" in repo.error
    assert not (tmp_path / "repos" / "nowhere").exists()
    assert jobs.progress(repo_id) == ""


def test_a_source_that_looks_like_an_option_is_a_source(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "manager.db")
    repo = reserve_repo(registry, tmp_path / "repos", "--upload-pack=touch pwned", name="opt")
    try:
        run_clone(registry, repo, "--upload-pack=touch pwned")
    except RepoError as exc:
        assert "git clone failed" in str(exc)
    else:
        raise AssertionError("a clone of an option succeeded")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert registry.get_repo(repo.id) is None


class _Endless(BaseHTTPRequestHandler):
    """A git server that answers with a 2 MB message on one line, which git shows as
    ``remote: ...`` on its stderr."""

    def do_GET(self) -> None:
        body = b"<b>spam</b>" * 200_000
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_servers_endless_line_reaches_the_page_cut_short(tmp_path: Path) -> None:
    # Read whole, such a line made every 4 KB git wrote re-scan all of it so far (minutes of
    # the Manager's CPU for some MB), and the page and its JSON twin carried all of it.
    registry = Registry(tmp_path / "manager.db")
    lines: list[str] = []
    with serving(_Endless) as url:
        repo = reserve_repo(registry, tmp_path / "repos", url + "/app.git", name=None)
        with pytest.raises(RepoError):
            run_clone(registry, repo, url + "/app.git", keep_failed=True, progress=lines.append)
    assert any(line.startswith("remote: <b>spam</b>") for line in lines), lines
    assert max(len(line) for line in lines) <= MAX_LINE
    failed = registry.get_repo(repo.id)
    assert failed is not None and failed.status == ERROR
    assert failed.error.startswith("git clone failed: ") and len(failed.error) <= 2 * MAX_LINE
