"""The installer's own environment: kept when it works, rebuilt when its Python is gone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from install.venv import ensure_venv


def _bare_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def test_a_working_environment_is_kept(tmp_path: Path) -> None:
    venv = _bare_venv(tmp_path / "venv")
    (venv / "kept.txt").write_text("still here")
    assert ensure_venv(venv) is False
    assert (venv / "kept.txt").read_text() == "still here"


@pytest.mark.slow
def test_an_environment_whose_python_is_gone_is_rebuilt_with_pip(tmp_path: Path) -> None:
    # What `pyenv uninstall` or a Homebrew upgrade does to a venv: its interpreter vanishes.
    venv = _bare_venv(tmp_path / "venv")
    for name in ("python", "python3", f"python3.{sys.version_info.minor}"):
        (venv / "bin" / name).unlink(missing_ok=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "removed-python" / "bin" / "python3")
    assert ensure_venv(venv) is True
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    assert str(venv) in pip.stdout
