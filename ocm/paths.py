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
    return _xdg("XDG_CONFIG_HOME", ".config") / APP_NAME


def _xdg(variable: str, default: str) -> Path:
    """``$variable``, else ``~/default``."""
    return _from_xdg(variable) or Path.home() / default


def _from_xdg(variable: str) -> Path | None:
    """The folder ``$variable`` names; None when unset or relative (ignored, as the XDG
    spec says)."""
    value = Path(os.environ.get(variable) or "").expanduser()
    return value if value.is_absolute() else None


def config_dir_flaw() -> tuple[str, str] | None:
    """(what, what to do) when the config dir cannot hold files because it, or a folder
    above it, is a file (``OCM_CONFIG_DIR=/dev/null``), or it is a relative
    ``OCM_CONFIG_DIR``, which would be another folder in each folder ocm runs in; None
    otherwise.

    Advice to remove ``state.json`` inside a file could never work: name the variable."""
    where = config_dir()
    if os.environ.get("OCM_CONFIG_DIR") and not where.is_absolute():
        return (
            f"OCM_CONFIG_DIR ({where}) is a relative path, so ocm's token and state would be"
            " kept in whichever folder a command runs in",
            "set OCM_CONFIG_DIR to an absolute path, or unset it",
        )
    found = where
    try:
        while not found.exists() and found != found.parent:
            found = found.parent
        if found.is_dir():
            return None
    except OSError:
        return None
    variable = (
        "OCM_CONFIG_DIR"
        if os.environ.get("OCM_CONFIG_DIR")
        else "XDG_CONFIG_HOME"
        if _from_xdg("XDG_CONFIG_HOME")
        else None
    )
    what = f"the config dir {where} is not a directory"
    if found != where:
        what = f"the config dir {where} cannot be made: {found} is not a directory"
    if variable:
        return f"{what} (set by {variable})", f"set {variable} to a folder, or unset it"
    return what, f"move {found} aside, or set OCM_CONFIG_DIR to a folder"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/opencode-manager``, else ``~/.cache/opencode-manager``: only things
    ocm can work out again (e.g. the version of an ``opencode`` binary)."""
    return _xdg("XDG_CACHE_HOME", ".cache") / APP_NAME


def state_file() -> Path:
    return config_dir() / "state.json"


def credentials_file() -> Path:
    return config_dir() / "credentials.json"
