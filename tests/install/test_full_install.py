"""The whole path once, for real: ``python3 -m install`` from this checkout into a fresh
environment under the test's home, then ``ocm`` from a shell that knows only ~/.local/bin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocm import __version__
from tests.install.conftest import CHECKOUT, run_installer

SYSTEM_PATH = "/usr/bin:/bin"


def _shell(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    # A login-free shell with nothing but ~/.local/bin and the system directories on PATH:
    # neither the new environment nor the one running the tests.
    env = {"HOME": str(home), "PATH": f"{home}/.local/bin:{SYSTEM_PATH}", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_install_from_checkout_then_upgrade_in_place_then_unlink(
    isolated_env: Path, local_bin: Path, tmp_path: Path
) -> None:
    venv = isolated_env / ".local" / "share" / "ocm" / "venv"
    had_build_dir = (CHECKOUT / "build").exists()

    first = run_installer(path=SYSTEM_PATH)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout.splitlines()
    assert f"ocm-cli: creating a virtual environment in {venv}" in out
    assert f"ocm-cli: installed `ocm` at {local_bin / 'ocm'}" in out
    assert out[-1] == 'export PATH="$HOME/.local/bin:$PATH"'
    assert os.readlink(local_bin / "ocm") == str(venv / "bin" / "ocm")
    assert not (local_bin / "ocm-manager").exists()  # a laptop install has no Manager
    assert (CHECKOUT / "build").exists() == had_build_dir  # builds happen in a copy

    version = _shell("command -v ocm && ocm --version", isolated_env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines() == [str(local_bin / "ocm"), f"ocm {__version__}"]
    status = _shell("ocm status --json", isolated_env)
    assert status.returncode == 0, status.stderr
    install_info = json.loads(status.stdout)["install"]
    assert install_info["linkState"] == "here"
    assert install_info["script"] == os.path.realpath(venv / "bin" / "ocm")

    # Re-running upgrades the same environment in place; --manager adds ocm-manager.
    again = run_installer("--manager", path=f"{local_bin}:{SYSTEM_PATH}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating a virtual environment" not in again.stdout
    assert again.stdout.splitlines()[-2:] == [
        f"ocm-cli: `ocm` already installed at {local_bin / 'ocm'}; nothing to do",
        f"ocm-cli: installed `ocm-manager` at {local_bin / 'ocm-manager'}",
    ]
    manager = _shell("ocm-manager --help", isolated_env)
    assert manager.returncode == 0, manager.stderr
    assert "serve" in manager.stdout

    # The copy installed in the environment is not a checkout: it can link, not install.
    python = venv / "bin" / "python"
    outside = run_installer(python=python, cwd=tmp_path)
    assert outside.returncode == 1
    assert outside.stderr.startswith("ocm-cli: no ocm checkout next to this installer")

    removed = run_installer("unlink", python=python, cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert not os.path.lexists(local_bin / "ocm")
    assert not os.path.lexists(local_bin / "ocm-manager")
    assert _shell("command -v ocm", isolated_env).returncode != 0

    # Removing the environment without unlinking leaves a dangling link: status says so.
    assert run_installer("link", python=python, cwd=tmp_path).returncode == 0
    shutil.rmtree(venv)
    status = subprocess.run(
        [sys.executable, "-m", "ocm", "status", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    install_info = json.loads(status.stdout)["install"]
    assert install_info["linkState"] == "dangling"
    assert "run `python3 -m install` from a checkout or remove the link" in install_info["fix"]
