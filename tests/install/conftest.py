"""Fixtures for the installer's tests: fake environments and the real installer as a process.

A fake environment is what the link decision needs to see of one: a directory with
``pyvenv.cfg`` and executable ``bin/ocm`` scripts. The whole install path runs for real
in test_full_install.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from install.environment import Environment

CHECKOUT = Path(__file__).resolve().parents[2]


def make_environment(
    root: Path, names: tuple[str, ...] = ("ocm",), *, is_venv: bool = True
) -> Environment:
    (root / "bin").mkdir(parents=True, exist_ok=True)
    if is_venv:
        (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    scripts = {}
    for name in names:
        script = root / "bin" / name
        script.write_text(f"#!/bin/sh\necho '{name} from {root}'\n")
        script.chmod(0o755)
        scripts[name] = script
    return Environment(prefix=root, scripts=scripts, is_venv=is_venv)


@pytest.fixture
def fake_env(tmp_path: Path) -> Callable[..., Environment]:
    """``fake_env(name, names=("ocm",), is_venv=True)``: a fake environment in tmp_path."""

    def make(
        name: str = "env", names: tuple[str, ...] = ("ocm",), *, is_venv: bool = True
    ) -> Environment:
        return make_environment(tmp_path / name, names, is_venv=is_venv)

    return make


@pytest.fixture
def local_bin(isolated_env: Path) -> Path:
    """``~/.local/bin`` of the test's home (not created)."""
    return isolated_env / ".local" / "bin"


def run_installer(
    *args: str,
    python: str | Path = sys.executable,
    cwd: Path | None = None,
    path: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``<python> -m install <args>`` with the test's environment; PATH can be chosen."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    env.update(extra_env or {})
    return subprocess.run(
        [str(python), "-m", "install", *args],
        cwd=cwd or CHECKOUT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
