"""The one place that decides where ocm keeps its files (SPEC §2)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "opencode-manager"


def config_dir() -> Path:
    """``$OCM_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/opencode-manager``, else ``~/.config/…``.

    The same on Linux and macOS on purpose: a developer finds the file where the docs say.
    """
    override = os.environ.get("OCM_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / APP_NAME


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/opencode-manager``, else ``~/.cache/opencode-manager``: only things
    ocm can work out again (e.g. the version of an ``opencode`` binary)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / APP_NAME


def state_file() -> Path:
    return config_dir() / "state.json"


def credentials_file() -> Path:
    return config_dir() / "credentials.json"
