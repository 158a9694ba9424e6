"""Which Python environment ``ocm`` is installed in, and which of its scripts to link."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from install.errors import InstallError
from install.paths import is_inside, same_path

DISTRIBUTION = "ocm-cli"
CLIENT_SCRIPT = "ocm"
MANAGER_SCRIPT = "ocm-manager"
MANAGER_EXTRA = "manager"
SCRIPT_NAMES = (CLIENT_SCRIPT, MANAGER_SCRIPT)


@dataclass(frozen=True)
class Environment:
    """A Python environment holding ocm: where it lives and the console scripts to expose.

    ``scripts`` maps a name to its absolute path; ``ocm-manager`` is only there when the
    Manager extra is installed, since its script exists either way but would fail to start.
    """

    prefix: Path
    scripts: dict[str, Path] = field(default_factory=dict)
    is_venv: bool = True

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (a link's destination, existing or not) belongs to this environment.

        Inside a virtual environment everything under its prefix is ours. Outside one the
        prefix is shared (``/usr``), so only our scripts themselves count.
        """
        if any(same_path(path, script) for script in self.scripts.values()):
            return True
        return self.is_venv and is_inside(path, self.prefix)


def current() -> Environment:
    """The environment this interpreter runs in, with the scripts pip installed for ocm."""
    import importlib.metadata as metadata

    prefix = Path(sys.prefix)
    found: dict[str, Path] = {}
    extra_ok = False
    # The first distribution that recorded its scripts: a source checkout's stray
    # ``ocm_cli.egg-info`` (found first when the current directory is the checkout) has none.
    for dist in metadata.distributions(name=DISTRIBUTION):
        for entry in dist.files or ():
            if entry.name in SCRIPT_NAMES and entry.name not in found:
                located = Path(os.path.normpath(str(dist.locate_file(entry))))
                if located.is_file():
                    found[entry.name] = located
        if found:
            extra_ok = _extra_installed(dist.requires or [], MANAGER_EXTRA)
            break
    if not found:
        # Installers that write no file list: fall back to the scheme's scripts directory.
        scripts_dir = Path(sysconfig.get_path("scripts"))
        for name in SCRIPT_NAMES:
            if (scripts_dir / name).is_file():
                found[name] = scripts_dir / name
        extra_ok = _requirements_installed(["flask", "waitress", "werkzeug"])
    if CLIENT_SCRIPT not in found:
        raise InstallError(
            f"ocm is not installed in this Python environment ({prefix})",
            f"run `python3 -m install` from a checkout, or `{_python()} -m pip install "
            "<checkout>` first",
        )
    if not extra_ok:
        found.pop(MANAGER_SCRIPT, None)
    return Environment(prefix=prefix, scripts=found, is_venv=sys.prefix != sys.base_prefix)


def _python() -> str:
    return sys.executable or "python3"


_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _extra_installed(requires: list[str], extra: str) -> bool:
    wanted = []
    for requirement in requires:
        requirement_part, _, marker = requirement.partition(";")
        if re.search(r"""extra\s*==\s*["']""" + re.escape(extra) + r"""["']""", marker):
            match = _NAME.match(requirement_part)
            if match:
                wanted.append(match.group(1))
    return bool(wanted) and _requirements_installed(wanted)


def _requirements_installed(names: list[str]) -> bool:
    import importlib.metadata as metadata

    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return False
    return True
