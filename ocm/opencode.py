"""Which ``opencode`` ocm runs, which version it is, and whether ocm can work with it.

The one place that knows the pinned OpenCode version: the installer, every install hint and
the scripts read :data:`PINNED_VERSION` from here. Standard library only, since the
installer imports it before anything is installed, and cheap, since ``ocm status`` and bare
``ocm`` use it on every start.

Lookup order (SPEC §2): ``$OCM_OPENCODE_BIN``, then ``opencode`` on PATH, then ocm's own copy
that ``python3 -m install`` put in ocm's environment (``<venv>/opencode``). A version is read
from the npm package's ``package.json`` beside the binary when there is one (instant), else
from ``opencode --version``, remembered per binary (path, size, mtime) in the cache dir:
OpenCode can take seconds to print its version.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from ocm import paths
from ocm.errors import OcmError

PACKAGE = "opencode-ai"
# The OpenCode release ocm is tested with; the installer installs exactly this one.
PINNED_VERSION = "1.18.33"
# `opencode attach --username` (which ocm passes) arrived in 1.14.3x; before it the TUI
# cannot authenticate through the Manager. 1.15.0 is the oldest line ocm accepts.
MINIMUM_VERSION = (1, 15, 0)
BIN_ENV = "OCM_OPENCODE_BIN"
OWN_DIR = "opencode"  # inside ocm's environment: an npm prefix holding the pinned package

FROM_ENV = BIN_ENV
FROM_PATH = "PATH"
FROM_OWN = "ocm's own copy"

VERSION_TIMEOUT = 30.0


def pinned_spec() -> str:
    return f"{PACKAGE}@{PINNED_VERSION}"


def install_hint() -> str:
    """How to get a working OpenCode, naming the pinned version."""
    return (
        f"install it with `python3 -m install` from the ocm checkout, or `npm i -g {pinned_spec()}`"
    )


def minimum_text() -> str:
    return ".".join(str(part) for part in MINIMUM_VERSION)


def own_copy(prefix: str | os.PathLike[str] | None = None) -> Path:
    """Where the installer puts OpenCode inside the environment at ``prefix`` (default: ours)."""
    base = Path(prefix) if prefix is not None else Path(sys.prefix)
    return base / OWN_DIR / "node_modules" / ".bin" / "opencode"


class Found:
    """An ``opencode`` executable, where the lookup found it, and its version if known."""

    __slots__ = ("path", "source", "version")

    def __init__(self, path: str, source: str, version: str | None) -> None:
        self.path = path
        self.source = source  # FROM_ENV, FROM_PATH or FROM_OWN
        self.version = version

    @property
    def too_old(self) -> bool:
        parsed = parse_version(self.version)
        return parsed is not None and parsed < MINIMUM_VERSION

    def problem(self) -> str | None:
        """Why ocm cannot use this OpenCode, or None."""
        if not self.too_old:
            return None
        return (
            f"`opencode` {self.version} at {self.path} (from {self.source}) is too old: ocm "
            f"needs {minimum_text()} or newer for `opencode attach --username`"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "source": self.source,
            "version": self.version,
            "problem": self.problem(),
        }


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``1.18.33`` (or ``v1.18.33``, or a line containing it) as a tuple; None if none."""
    if not text:
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in match.groups()) if match else None


def _which(name: str) -> str | None:
    """``shutil.which`` without importing shutil (and with it bz2/lzma) on the fast path."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(entry or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def locate(prefix: str | os.PathLike[str] | None = None) -> Found | None:
    """The ``opencode`` ocm would run, or None when there is none anywhere.

    A set ``$OCM_OPENCODE_BIN`` that names nothing executable is an error, not a fall-back:
    the user asked for that one.
    """
    configured = os.environ.get(BIN_ENV, "").strip()
    if configured:
        found = _which(os.path.expanduser(configured))
        if not found:
            raise OcmError(
                f"{BIN_ENV}={configured} is not an executable",
                f"fix {BIN_ENV} or unset it to use `opencode` on PATH",
            )
        return Found(found, FROM_ENV, version_of(found))
    found = _which("opencode")
    if found:
        return Found(found, FROM_PATH, version_of(found))
    own = own_copy(prefix)
    if os.access(own, os.X_OK):
        return Found(str(own), FROM_OWN, version_of(str(own)))
    return None


def require(prefix: str | os.PathLike[str] | None = None) -> Found:
    """The ``opencode`` to exec, or an error naming the pinned version to install."""
    found = locate(prefix)
    if found is None:
        raise OcmError(
            "cannot find `opencode` (the OpenCode TUI) on PATH or in ocm's environment",
            f"{install_hint()}, or set {BIN_ENV}",
        )
    problem = found.problem()
    if problem:
        own = own_copy(prefix)
        if found.source != FROM_OWN and os.access(own, os.X_OK):
            own_version = version_of(str(own))
            if not Found(str(own), FROM_OWN, own_version).too_old:
                raise OcmError(
                    problem,
                    f"ocm's own copy at {own} is {own_version or 'there'}: remove the old one "
                    f"from {found.source} or set {BIN_ENV}={own}",
                )
        raise OcmError(problem, f"install {pinned_spec()} (`npm i -g {pinned_spec()}`)")
    return found


# ---------------------------------------------------------------- versions


def _package_version(binary: str) -> str | None:
    """The version in the npm package that ships ``binary`` (``<pkg>/bin/opencode[.exe]``)."""
    real = os.path.realpath(binary)
    manifest = os.path.join(os.path.dirname(os.path.dirname(real)), "package.json")
    try:
        with open(manifest, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("name") == PACKAGE:
        version = data.get("version")
        return version if isinstance(version, str) else None
    return None


def _cache_file() -> Path:
    return paths.cache_dir() / "opencode-versions.json"


def _fingerprint(real: str) -> list[int] | None:
    try:
        info = os.stat(real)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _cached(real: str, fingerprint: list[int]) -> tuple[bool, str | None]:
    try:
        with open(_cache_file(), encoding="utf-8") as handle:
            entry = json.load(handle).get(real)
    except (OSError, ValueError, AttributeError):
        return False, None
    if isinstance(entry, dict) and entry.get("fingerprint") == fingerprint:
        version = entry.get("version")
        return True, version if isinstance(version, str) else None
    return False, None


def _remember(real: str, fingerprint: list[int], version: str | None) -> None:
    path = _cache_file()
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[real] = {"fingerprint": fingerprint, "version": version}
    try:
        from ocm.fsutil import atomic_write_text  # noqa: PLC0415 - tempfile only when writing

        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    except OSError:
        pass  # a cache that cannot be written only costs time


def _ask(binary: str) -> str | None:
    import subprocess  # noqa: PLC0415 - only on a cache miss

    try:
        done = subprocess.run(
            [binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\d+\.\d+\.\d+\S*", done.stdout) if done.returncode == 0 else None
    return match.group(0) if match else None


def version_of(binary: str) -> str | None:
    """The version of the OpenCode at ``binary``, or None when it does not say."""
    packaged = _package_version(binary)
    if packaged:
        return packaged
    real = os.path.realpath(binary)
    fingerprint = _fingerprint(real)
    if fingerprint is None:
        return None
    known, version = _cached(real, fingerprint)
    if known:
        return version
    version = _ask(binary)
    _remember(real, fingerprint, version)
    return version
