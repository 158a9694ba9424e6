"""Which ``opencode`` ocm runs (``OCM_OPENCODE_BIN``, PATH, ocm's own copy), its version, and
a clear refusal of one too old for ``attach --username``, naming the pinned version."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ocm import opencode
from ocm.errors import OcmError
from ocm.opencode import PINNED_VERSION
from tests.client.conftest import AddedRepo, Recorder, assert_one_error, run_ocm
from tests.support.processes import RunningManager


def fake_opencode(path: Path, version: str) -> Path:
    """An executable that answers ``--version`` like an OpenCode of that version would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def npm_layout(prefix: Path, version: str) -> Path:
    """What ``npm install --prefix <prefix> opencode-ai`` leaves: the version in package.json
    and a binary that would take seconds to print it."""
    package = prefix / "opencode" / "node_modules" / "opencode-ai"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "opencode-ai", "version": version}))
    binary = package / "bin" / "opencode.exe"
    binary.write_text("#!/bin/sh\nexit 7\n")  # never asked: the manifest answers
    binary.chmod(0o755)
    link = prefix / "opencode" / "node_modules" / ".bin" / "opencode"
    link.parent.mkdir()
    link.symlink_to("../opencode-ai/bin/opencode.exe")
    return link


def test_lookup_order_env_then_path_then_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = npm_layout(tmp_path / "venv", PINNED_VERSION)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    found = opencode.locate(prefix=tmp_path / "venv")
    assert found is not None
    assert (found.path, found.source, found.version) == (str(own), "ocm's own copy", PINNED_VERSION)

    on_path = fake_opencode(tmp_path / "path-bin" / "opencode", "1.17.2")
    monkeypatch.setenv("PATH", str(on_path.parent))
    found = opencode.locate(prefix=tmp_path / "venv")
    assert found is not None
    assert (found.path, found.source, found.version) == (str(on_path), "PATH", "1.17.2")

    chosen = fake_opencode(tmp_path / "chosen" / "oc", "1.16.0")
    monkeypatch.setenv("OCM_OPENCODE_BIN", str(chosen))
    found = opencode.locate(prefix=tmp_path / "venv")
    assert found is not None
    assert (found.path, found.source, found.version) == (str(chosen), "OCM_OPENCODE_BIN", "1.16.0")


def test_an_old_opencode_on_path_points_at_a_good_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = npm_layout(tmp_path / "venv", PINNED_VERSION)
    old = fake_opencode(tmp_path / "old-bin" / "opencode", "1.4.7")
    monkeypatch.setenv("PATH", str(old.parent))
    with pytest.raises(OcmError) as raised:
        opencode.require(prefix=tmp_path / "venv")
    assert raised.value.message == (
        f"`opencode` 1.4.7 at {old} (from PATH) is too old: ocm needs 1.15.0 or newer for "
        f"`opencode attach --username`; ocm's own copy at {own} is {PINNED_VERSION}: remove "
        f"the old one from PATH or set OCM_OPENCODE_BIN={own}"
    )
    monkeypatch.setenv("OCM_OPENCODE_BIN", str(own))
    assert opencode.require(prefix=tmp_path / "venv").path == str(own)


def test_a_version_is_asked_once_per_binary_and_asked_again_when_it_changes(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "bin" / "opencode"
    counter = tmp_path / "asked"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\necho x >> {counter}\necho 1.16.1\n")
    binary.chmod(0o755)
    assert opencode.version_of(str(binary)) == "1.16.1"
    assert opencode.version_of(str(binary)) == "1.16.1"
    assert counter.read_text().count("x") == 1
    binary.write_text(f"#!/bin/sh\necho x >> {counter}\necho 1.18.0 # upgraded\n")
    assert opencode.version_of(str(binary)) == "1.18.0"
    assert counter.read_text().count("x") == 2


def test_an_opencode_too_old_for_attach_username_is_refused_naming_the_pinned_version(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    recorder: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_repo("widget")
    old = fake_opencode(tmp_path / "old-bin" / "opencode", "1.2.27")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    assert_one_error(
        run_ocm("use", "widget"),
        1,
        f"`opencode` 1.2.27 at {old} (from PATH) is too old: ocm needs 1.15.0 or newer for "
        "`opencode attach --username`",
        f"install opencode-ai@{PINNED_VERSION} (`npm i -g opencode-ai@{PINNED_VERSION}`)",
    )
    assert not recorder.called()
    status = run_ocm("status")
    assert status.returncode == 0
    assert f"opencode:  {old} (1.2.27, PATH)" in status.stdout
    assert "is too old: ocm needs 1.15.0 or newer" in status.stdout
    assert f"install opencode-ai@{PINNED_VERSION}" in status.stdout
    report = json.loads(run_ocm("status", "--json").stdout)
    assert report["opencode"]["version"] == "1.2.27"
    assert "too old" in report["opencode"]["problem"]


def test_status_shows_the_opencode_it_would_run(recorder: Recorder) -> None:
    status = run_ocm("status")
    assert f"opencode:  {recorder.path} ({PINNED_VERSION}, PATH)" in status.stdout


def test_no_opencode_anywhere_names_the_pinned_version(
    login: RunningManager, add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> None:
    add_repo("widget")
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    result = run_ocm("use", "widget", env={"PATH": str(only_git)})
    assert_one_error(
        result,
        1,
        "cannot find `opencode` (the OpenCode TUI) on PATH or in ocm's environment",
        f"`npm i -g opencode-ai@{PINNED_VERSION}`",
        "python3 -m install",
    )
    status = run_ocm("status", env={"PATH": str(only_git)})
    assert "opencode:  not found" in status.stdout
    assert f"npm i -g opencode-ai@{PINNED_VERSION}" in status.stdout
