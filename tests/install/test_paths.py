"""Where the environment and the links go: option, then environment variable, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from install import paths


def test_venv_dir_order(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME")
    assert paths.venv_dir() == isolated_env / ".local" / "share" / "ocm" / "venv"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert paths.venv_dir() == isolated_env / ".local" / "share" / "ocm" / "venv"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.venv_dir() == tmp_path / "data" / "ocm" / "venv"
    monkeypatch.setenv("OCM_VENV", "~/envs/ocm")
    assert paths.venv_dir() == isolated_env / "envs" / "ocm"
    assert paths.venv_dir(tmp_path / "chosen") == tmp_path / "chosen"


def test_bin_dir_order(isolated_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert paths.bin_dir() == isolated_env / ".local" / "bin"
    monkeypatch.setenv("OCM_BIN_DIR", str(tmp_path / "bin"))
    assert paths.bin_dir() == tmp_path / "bin"
    assert paths.bin_dir("~/tools") == isolated_env / "tools"


def test_on_path_resolves_links_and_tilde(isolated_env: Path, tmp_path: Path) -> None:
    real = isolated_env / ".local" / "bin"
    real.mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    assert paths.on_path(real, f"/usr/bin:{alias}")
    assert paths.on_path(real, "~/.local/bin")
    assert not paths.on_path(real, "/usr/bin::/bin")
