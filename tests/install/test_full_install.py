"""The whole path once, for real: ``python3 -m install`` from this checkout into a fresh
environment under the test's home (pip, and npm installing the pinned OpenCode), then ``ocm``
from a shell that knows only ~/.local/bin."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocm import __version__
from ocm.opencode import PINNED_VERSION
from tests.install.conftest import CHECKOUT, run_installer

SYSTEM_PATH = "/usr/bin:/bin"
# The machine's npm cache (scripts/test's install of the pinned OpenCode fills it): npm
# prefers it to the network, so the installer's real `npm install` needs no download.
NPM_ENV = {
    "npm_config_cache": os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".npm"),
    "npm_config_prefer_offline": "true",
}
OLD_OPENCODE = "#!/bin/sh\necho 1.2.0\n"


def _shell(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    # A login-free shell with nothing but ~/.local/bin and the system directories on PATH:
    # neither the new environment nor the one running the tests.
    env = {"HOME": str(home), "PATH": f"{home}/.local/bin:{SYSTEM_PATH}", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.e2e
def test_install_from_checkout_then_upgrade_in_place_then_unlink(
    isolated_env: Path, local_bin: Path, tmp_path: Path
) -> None:
    venv = isolated_env / ".local" / "share" / "ocm" / "venv"
    had_build_dir = (CHECKOUT / "build").exists()

    own = venv / "opencode" / "node_modules" / ".bin" / "opencode"
    # An `opencode` too old for ocm on PATH: the installer installs the pinned one anyway.
    old_bin = tmp_path / "old-bin"
    old_bin.mkdir()
    (old_bin / "opencode").write_text(OLD_OPENCODE)
    (old_bin / "opencode").chmod(0o755)
    first = run_installer(path=f"{old_bin}:{SYSTEM_PATH}", extra_env=NPM_ENV, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout.splitlines()
    assert f"ocm-cli: creating a virtual environment in {venv}" in out
    assert (
        f"ocm-cli: `opencode` 1.2.0 at {old_bin / 'opencode'} is too old for ocm; installing "
        f"opencode-ai@{PINNED_VERSION} into {venv / 'opencode'} (npm, about a minute)"
    ) in out
    assert f"ocm-cli: installed OpenCode {PINNED_VERSION} at {own}" in out
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
    report = json.loads(status.stdout)
    install_info = report["install"]
    assert install_info["linkState"] == "here"
    assert install_info["script"] == os.path.realpath(venv / "bin" / "ocm")
    # Nothing on PATH: ocm runs its own copy, and says which and what version.
    assert report["opencode"] == {
        "path": str(own),
        "source": "ocm's own copy",
        "version": PINNED_VERSION,
        "problem": None,
    }
    text = _shell("ocm status", isolated_env).stdout
    assert f"opencode:  {own} ({PINNED_VERSION}, ocm's own copy)" in text

    # Re-running upgrades the same environment in place; --manager adds ocm-manager.
    again = run_installer("--manager", path=f"{local_bin}:{SYSTEM_PATH}", extra_env=NPM_ENV)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating a virtual environment" not in again.stdout
    assert (
        f"ocm-cli: OpenCode {PINNED_VERSION} is already in {venv} (ocm's own copy); nothing to do"
    ) in again.stdout.splitlines()
    assert again.stdout.splitlines()[-2:] == [
        f"ocm-cli: `ocm` already installed at {local_bin / 'ocm'}; nothing to do",
        f"ocm-cli: installed `ocm-manager` at {local_bin / 'ocm-manager'}",
    ]
    # Nothing changed since: pip is not run again, and nothing is said about installing.
    rerun = run_installer("--manager", path=f"{local_bin}:{SYSTEM_PATH}", extra_env=NPM_ENV)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (
        f"ocm-cli: {venv} already has this checkout's code with the Manager; "
        "nothing to do (pip skipped)"
    ) in rerun.stdout.splitlines()
    assert "installing" not in rerun.stdout + rerun.stderr

    # Upgrading ocm upgrades its own OpenCode when it is not the pinned version.
    manifest = venv / "opencode" / "node_modules" / "opencode-ai" / "package.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "version": "1.16.0"}))
    upgraded = run_installer(path=f"{local_bin}:{SYSTEM_PATH}", extra_env=NPM_ENV, timeout=900)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert (
        "ocm-cli: upgrading ocm's own OpenCode from 1.16.0; installing "
        f"opencode-ai@{PINNED_VERSION}"
    ) in upgraded.stdout
    assert json.loads(manifest.read_text())["version"] == PINNED_VERSION

    # Without npm: ocm is still installed and linked, and the installer says how to get
    # Node.js (exit 1); --no-opencode skips OpenCode altogether.
    shutil.rmtree(venv / "opencode")
    no_npm = tmp_path / "no-npm-bin"
    no_npm.mkdir()
    bare = run_installer("--manager", path=str(no_npm))
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert bare.stderr.strip().splitlines()[-1] == (
        f"ocm-cli: no `opencode` found, and npm is missing to install "
        f"opencode-ai@{PINNED_VERSION}; install Node.js 20 or newer, which brings npm "
        "(https://nodejs.org, or your package manager: `sudo apt install nodejs npm`, "
        "`brew install node`), then rerun `python3 -m install`; or pass --no-opencode and "
        f"install OpenCode yourself with `npm i -g opencode-ai@{PINNED_VERSION}`"
    )
    assert os.readlink(local_bin / "ocm") == str(venv / "bin" / "ocm")
    skipped = run_installer("--manager", "--no-opencode", path=str(no_npm))
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "ocm-cli: --no-opencode: not installing OpenCode" in skipped.stdout
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
