"""Client test helpers: run the real CLI, a recording ``opencode`` on PATH, a logged-in laptop."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ocm.opencode import PINNED_VERSION
from tests.client.keyrings import FILE_ENV
from tests.support.processes import RunningManager, ocm_command
from tests.support.upstream import RecordingUpstream, stand_in_env

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED_ENV = (
    "OPENCODE_SERVER_PASSWORD",
    "OCM_REMOTE_MANAGER_URL",
    "OCM_REMOTE_REPO_NAME",
    "OCM_TOKEN",
)

RECORDER = """\
#!{python}
# Stands in for `opencode`: answers `--version` like the pinned one; otherwise records how
# it was started, then exits 0.
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print({version!r})
    sys.exit(0)
with open({record!r}, "w") as handle:
    json.dump({{"argv": sys.argv, "cwd": os.getcwd(),
               "env": {{k: os.environ.get(k) for k in {names!r}}}}}, handle)
"""


def config(tmp_path: Path) -> Path:
    """The client's config folder under the isolated home of ``tmp_path``."""
    return tmp_path / "home" / ".config" / "opencode-manager"


def run_ocm(
    *args: str, cwd: Path | None = None, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (``python -m ocm``), with this test's environment."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run(
        ocm_command(*args),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Exactly one ``ocm: what; what to do`` line on stderr, the exit code, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("ocm: ") and "; " in line, line
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@dataclass
class Recorder:
    bin_dir: Path
    record: Path

    @property
    def path(self) -> Path:
        return self.bin_dir / "opencode"

    def called(self) -> bool:
        return self.record.exists()

    def read(self) -> dict[str, Any]:
        return dict(json.loads(self.record.read_text()))

    def attached_dir(self) -> str:
        """The ``--dir`` the recorded ``opencode attach`` was given."""
        argv = self.read()["argv"]
        return str(argv[argv.index("--dir") + 1])


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recording ``opencode`` first on PATH."""
    bin_dir = tmp_path / "recorder-bin"
    bin_dir.mkdir()
    rec = Recorder(bin_dir, tmp_path / "opencode-call.json")
    rec.path.write_text(
        RECORDER.format(
            python=sys.executable,
            record=str(rec.record),
            names=RECORDED_ENV,
            version=PINNED_VERSION,
        )
    )
    rec.path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return rec


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The OS keyring, for subprocesses too: ``FileKeyring``, kept in the file returned."""
    store = tmp_path / "keyring.json"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.client.keyrings.FileKeyring")
    monkeypatch.setenv(FILE_ENV, str(store))
    return store


@pytest.fixture
def manager(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> Iterator[RunningManager]:
    """A Manager whose OpenCode is the recording stand-in (``--opencode-url``): a TUI can
    attach there (the recording ``opencode`` on PATH does), without waiting for a real one."""
    with RecordingUpstream() as upstream:
        env = stand_in_env(tmp_path / "manager-home")
        yield manager_factory("--opencode-url", upstream.url, env=env)


@pytest.fixture
def login(manager: RunningManager) -> RunningManager:
    """A laptop logged in to ``manager`` (token in credentials.json: no keyring in tests)."""
    result = run_ocm("login", manager.url, input=manager.token + "\n")
    assert result.returncode == 0, result.stderr
    return manager


@dataclass(frozen=True)
class AddedRepo:
    repo_id: int
    name: str
    directory: str
    source: Path


@pytest.fixture
def add_repo(manager: RunningManager, git_repo: Callable[..., Path]) -> Callable[..., AddedRepo]:
    """``add_repo(name, origin)``: a source repo with that origin, registered on the Manager;
    ``add_repo(name, source=path)`` registers an existing repo under ``name``."""

    def add(
        name: str, origin: str | None = None, *, source: Path | None = None, **kwargs: Any
    ) -> AddedRepo:
        if source is None:
            source = git_repo(f"source-{name}", origin=origin, **kwargs)
        done = manager.cli("repo", "add", str(source), "--name", name)
        match = re.search(
            r"added repo (\d+) \S+ \(.*\) at (.+)$", done.stdout + done.stderr, re.MULTILINE
        )
        assert match, done.stdout + done.stderr
        return AddedRepo(int(match.group(1)), name, match.group(2).strip(), source)

    return add
