"""The one place that decides where the installer puts the environment and the links."""

from __future__ import annotations

import os
from pathlib import Path

VENV_ENV = "OCM_VENV"
BIN_DIR_ENV = "OCM_BIN_DIR"


def _absolute(value: str | os.PathLike[str]) -> Path:
    # absolute() rather than resolve(): links and messages keep the path the user knows.
    return Path(value).expanduser().absolute()


def venv_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``--venv``, else ``$OCM_VENV``, else ``$XDG_DATA_HOME/ocm/venv``, else ``~/.local/share/…``.

    XDG_DATA_HOME is honoured like the client honours XDG_CONFIG_HOME; a relative value is
    ignored, as the XDG spec says.
    """
    if override:
        return _absolute(override)
    env = os.environ.get(VENV_ENV)
    if env:
        return _absolute(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return _absolute(base / "ocm" / "venv")


def default_bin_dir() -> Path:
    return Path.home() / ".local" / "bin"


def bin_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``--bin-dir``, else ``$OCM_BIN_DIR``, else ``~/.local/bin`` (where pipx and uv link too)."""
    if override:
        return _absolute(override)
    env = os.environ.get(BIN_DIR_ENV)
    if env:
        return _absolute(env)
    return _absolute(default_bin_dir())


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both name the same place, even through symlinks or when neither exists yet."""
    return os.path.realpath(a) == os.path.realpath(b)


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def on_path(directory: Path, path_env: str | None = None) -> bool:
    """Whether ``directory`` is one of PATH's entries (compared after resolving links)."""
    value = os.environ.get("PATH", "") if path_env is None else path_env
    return any(
        entry and same_path(os.path.expanduser(entry), directory)
        for entry in value.split(os.pathsep)
    )


def path_export_line(directory: Path) -> str:
    """The line to add to a shell's startup file so ``directory`` comes first on PATH."""
    home = Path.home()
    try:
        shown = "$HOME/" + Path(directory).relative_to(home).as_posix()
    except ValueError:
        shown = str(directory)
        for char in ("\\", '"', "$", "`"):
            shown = shown.replace(char, "\\" + char)
    return f'export PATH="{shown}:$PATH"'


def shell_rc_file() -> str:
    """Best guess of the startup file the user edits, named in the PATH hint."""
    shell = os.path.basename(os.environ.get("SHELL", ""))
    return {"zsh": "~/.zshrc", "bash": "~/.bashrc"}.get(shell, "your shell's startup file")
