"""Fixtures every test shares. Tests never touch the real home, config or keyring."""

from __future__ import annotations

import collections
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.git import IDENTITY, make_repo
from tests.support.processes import RunningManager, start_manager

PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "OCM_TEST_OPENCODE", "TERM")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of end-to-end tests first, then the others by their number of tests: with
    one file per worker at a time (``--dist loadfile --no-loadscope-reorder``), a file of a
    single two-minute test (the quick start) taken last would run on alone at the end."""

    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    tests = collections.Counter(file_of(item) for item in items)
    end_to_end = {file_of(item) for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: (file_of(item) not in end_to_end, -tests[file_of(item)]))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME, the XDG dirs, TMPDIR and every OCM_* setting into tmp_path.

    The keyring is forced to the "fail" backend so no test can reach a real one; tests
    about the keyring install an in-memory backend themselves. TMPDIR: OpenCode (a Bun
    binary) unpacks a 5-13 MB native library into the temp directory at every TUI start
    and leaves it there when the TUI is killed; in tmp_path, pytest's cleanup removes it.
    """
    home = tmp_path / "home"
    home.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    for name in list(os.environ):
        if name.startswith(("OCM_", "OPENCODE_", "XDG_", "GIT_")) and name != "OCM_TEST_OPENCODE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return home


@pytest.fixture(scope="session")
def opencode_bin() -> str:
    """The pinned real ``opencode`` installed by scripts/test. Missing is a failure, not a skip."""
    path = os.environ.get("OCM_TEST_OPENCODE") or shutil.which("opencode")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("the real opencode is not installed; run the tests through scripts/test")
    return path


@pytest.fixture
def manager_factory(tmp_path: Path) -> Iterator[Callable[..., RunningManager]]:
    """Start real Managers (``ocm-manager serve`` on 127.0.0.1 port 0); all stopped at the end.

    ``manager_factory(*serve_args, data_dir=None)``; pass ``--no-opencode`` unless the test
    is about OpenCode.
    """
    started: list[RunningManager] = []

    def start(*extra: str, data_dir: Path | None = None, **kwargs: object) -> RunningManager:
        index = len(started)
        running = start_manager(
            data_dir or tmp_path / f"manager-data-{index}",
            tmp_path / f"manager-{index}.log",
            *extra,
            **kwargs,
        )  # type: ignore[arg-type]
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def manager(manager_factory: Callable[..., RunningManager]) -> RunningManager:
    """A Manager without OpenCode: enough for everything but the proxy."""
    return manager_factory("--no-opencode")


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., Path]:
    """``git_repo(name, origin=None, branch="main", files=None)``: a real repo in tmp_path."""

    def make(name: str, **kwargs: object) -> Path:
        return make_repo(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make
