"""OpenCode comes with ocm: the pinned ``opencode-ai`` from npm, in ocm's own environment.

Installed into ``<venv>/opencode`` (an npm prefix) when no ``opencode`` of a supported
version is found, or when ocm's own copy is not the pinned version (so upgrading ocm
upgrades it). ``ocm`` finds that copy after ``$OCM_OPENCODE_BIN`` and PATH
(:mod:`ocm.opencode`, which also holds the pinned version).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from install.errors import PROGRAM, InstallError
from ocm import opencode
from ocm.errors import OcmError

NODE_HINT = (
    "install Node.js 20 or newer, which brings npm (https://nodejs.org, or your package "
    "manager: `sudo apt install nodejs npm`, `brew install node`), then rerun "
    "`python3 -m install`; or pass --no-opencode and install OpenCode yourself with "
    f"`npm i -g {opencode.pinned_spec()}`"
)


def say(text: str) -> None:
    print(f"{PROGRAM}: {text}", flush=True)


def ensure(venv: Path) -> None:
    """Make sure ``ocm`` will find a usable OpenCode, installing the pinned one if needed."""
    own = opencode.own_copy(venv)
    pinned = opencode.PINNED_VERSION
    if os.access(own, os.X_OK):
        have = opencode.version_of(str(own))
        if have == pinned:
            say(f"OpenCode {pinned} is already in {venv} (ocm's own copy); nothing to do")
            return
        _npm_install(venv, f"upgrading ocm's own OpenCode from {have or 'an unknown version'}")
        return
    try:
        found = opencode.locate(prefix=venv)
    except OcmError:
        found = None  # a broken OCM_OPENCODE_BIN: ocm will say so; give it a working copy
    if found is not None and not found.problem() and found.version is not None:
        say(
            f"using OpenCode {found.version} at {found.path} (from {found.source}); "
            "ocm's own copy is not needed"
        )
        return
    if found is None:
        why = "no `opencode` found"
    elif found.problem():
        why = f"`opencode` {found.version} at {found.path} is too old for ocm"
    else:
        why = f"`opencode` at {found.path} does not say its version"
    _npm_install(venv, why)


def _npm_install(venv: Path, why: str) -> None:
    """Install the pinned package into a fresh prefix beside the old one, then swap them.

    A fresh prefix, because npm trusts its lock file over what is on disk; a swap, so a
    failed or interrupted install leaves the previous copy working.
    """
    spec = opencode.pinned_spec()
    prefix = venv / opencode.OWN_DIR
    staging = venv / f"{opencode.OWN_DIR}.partial"
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(f"{why}, and npm is missing to install {spec}", NODE_HINT)
    say(f"{why}; installing {spec} into {prefix} (npm, about a minute)")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        npm,
        "install",
        "--prefix",
        str(staging),
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
        "--loglevel=error",
        spec,
    ]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
    except OSError as err:
        raise InstallError(f"could not run {npm}: {err.strerror or err}", NODE_HINT) from err
    fresh = opencode.own_copy(venv).relative_to(prefix)
    if result.returncode != 0 or not os.access(staging / fresh, os.X_OK):
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(
            f"npm could not install {spec} into {prefix} (exit status {result.returncode})",
            "see npm's message above, fix the cause (network, proxy, disk) and rerun "
            "`python3 -m install`, or pass --no-opencode",
        )
    retired = venv / f"{opencode.OWN_DIR}.old"
    shutil.rmtree(retired, ignore_errors=True)
    if prefix.exists():
        prefix.rename(retired)
    staging.rename(prefix)
    shutil.rmtree(retired, ignore_errors=True)
    own = opencode.own_copy(venv)
    say(f"installed OpenCode {opencode.version_of(str(own))} at {own}")
