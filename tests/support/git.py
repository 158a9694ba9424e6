"""Real git repositories in tmp_path."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.http_server import serving

# Module-scoped fixtures make repos outside the per-test environment (tests/conftest.py),
# where a fresh machine's empty HOME has no git identity: commits get this one then.
IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**IDENTITY, **os.environ},
    ).stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write ``{relative path: text}`` under ``root``, making folders as needed."""
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


@contextlib.contextmanager
def undeletable_file(directory: Path) -> Iterator[Path]:
    """``pgdata/PG_VERSION`` in ``directory``, which only a user past file modes may delete
    (what an agent's container leaves behind, owned by root): its folder may not be
    written, until the block ends."""
    locked = directory / "pgdata" / "PG_VERSION"
    locked.parent.mkdir()
    locked.write_text("16\n")
    locked.parent.chmod(0o555)
    try:
        yield locked
    finally:
        locked.parent.chmod(0o755)


def make_repo(
    path: Path,
    *,
    origin: str | None = None,
    branch: str = "main",
    files: dict[str, str] | None = None,
    object_format: str = "sha1",
) -> Path:
    """A repo with one commit (and ``origin`` set when given)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", f"--object-format={object_format}", "-b", branch)
    write_files(path, files or {"README.md": f"# {path.name}\n"})
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    if origin:
        git(path, "remote", "add", "origin", origin)
    return path


@contextlib.contextmanager
def dumb_http(repo: Path) -> Iterator[str]:
    """Serve a bare copy of ``repo`` over git's "dumb" HTTP (plain files); yield its URL
    (``http://127.0.0.1:<port>/<name>.git``). It asks for no password and ignores any sent."""
    root = repo.parent / f"{repo.name}-http"
    bare = root / f"{repo.name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    git(bare, "update-server-info")  # the refs list the dumb protocol reads

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(functools.partial(Quiet, directory=str(root))) as url:
        yield f"{url}/{bare.name}"
