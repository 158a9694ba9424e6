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


def config_dir_flaw() -> tuple[str, str] | None:
    """(what, what to do) when the config dir cannot hold files because it, or a folder
    above it, is a file (``OCM_CONFIG_DIR=/dev/null``); None otherwise.

    Advice to remove ``state.json`` inside a file could never work: name the variable."""
    where = config_dir()
    found = where
    try:
        while not found.exists() and found != found.parent:
            found = found.parent
        if found.is_dir():
            return None
    except OSError:
        return None
    variable = next((v for v in ("OCM_CONFIG_DIR", "XDG_CONFIG_HOME") if os.environ.get(v)), None)
    what = f"the config dir {where} is not a directory"
    if found != where:
        what = f"the config dir {where} cannot be made: {found} is not a directory"
    if variable:
        return f"{what} (set by {variable})", f"set {variable} to a folder, or unset it"
    return what, f"move {found} aside, or set OCM_CONFIG_DIR to a folder"


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
