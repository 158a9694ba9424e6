"""Create or update ocm's own virtual environment and install a checkout into it."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from install.environment import DISTRIBUTION, MANAGER_EXTRA
from install.errors import PROGRAM, InstallError

VENV_MARKER = "pyvenv.cfg"
# Written into the environment after a successful pip run: what was installed, from where.
INSTALL_RECORD = "ocm-install.json"
# What a build of the distribution is made of; a change to any of these means a new build.
SOURCE_PARTS = ("pyproject.toml", "README.md", "ocm", "manager", "install")


def checkout_dir() -> Path:
    """The source checkout this installer belongs to (it sits next to ``install/``)."""
    here = Path(__file__).resolve().parent.parent
    pyproject = here / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        text = ""
    if f'name = "{DISTRIBUTION}"' not in text:
        raise InstallError(
            f"no ocm checkout next to this installer ({here})",
            "run `python3 -m install` inside a clone of the repository, or use "
            "`python -m install link` to link an environment that already has ocm",
        )
    return here


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> bool:
    """Make ``venv`` a working virtual environment with pip; True when it was (re)created.

    An existing working one is kept, so re-running upgrades in place. One whose interpreter
    is gone (the Python it came from was removed or upgraded) is rebuilt. A directory that
    is not a virtual environment is never touched: it may hold anything.
    """
    if (venv / VENV_MARKER).is_file():
        if _works(venv_python(venv)):
            return False
        print(f"{PROGRAM}: {venv} no longer works (its Python is gone); recreating it", flush=True)
        _create(venv, clear=True)
        return True
    if venv.exists() and (not venv.is_dir() or any(venv.iterdir())):
        raise InstallError(
            f"{venv} exists and is not a virtual environment",
            "choose another place with --venv, or move it away and rerun",
        )
    _create(venv, clear=False)
    return True


def _works(python: Path) -> bool:
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; sys.exit(sys.version_info < (3, 10))"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _missing_venv_support() -> InstallError:
    version = sysconfig.get_python_version()
    return InstallError(
        f"this Python ({sys.executable}) cannot create virtual environments: "
        "its venv/ensurepip modules are missing",
        f"install them (Debian/Ubuntu: `sudo apt install python{version}-venv`) and rerun",
    )


def _create(venv: Path, *, clear: bool) -> None:
    # Debian and Ubuntu ship venv and ensurepip in a separate package; without it
    # `python3 -m venv` leaves a half-made environment behind. Ask before creating anything.
    try:
        import ensurepip  # noqa: F401
        import venv as venv_module
    except ImportError as err:
        raise _missing_venv_support() from err
    print(f"{PROGRAM}: creating a virtual environment in {venv}", flush=True)
    builder = venv_module.EnvBuilder(with_pip=True, clear=clear, symlinks=os.name != "nt")
    try:
        builder.create(str(venv))
    except subprocess.CalledProcessError as err:
        _show(err.output)
        raise InstallError(
            f"could not set up pip in {venv} (ensurepip failed)",
            "see the output above; on Debian/Ubuntu install "
            f"`python{sysconfig.get_python_version()}-venv`, then rerun",
        ) from err
    except OSError as err:
        raise InstallError(
            f"could not create {venv}: {err.strerror or err}",
            "check the permissions, or choose another place with --venv",
        ) from err


def _show(output: bytes | str | None) -> None:
    if not output:
        return
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


# Left out of the copy that is built: version control, environments, caches, build output.
_NOT_SOURCE = (
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".tox",
)


def source_digest(checkout: Path) -> str:
    """A hash of every file a build of ``checkout`` is made from (paths and contents).

    Content, not the version number: between releases the version stays the same while the
    code changes, and an install that skipped pip then would run yesterday's code.
    """
    digest = hashlib.sha256()
    for part in SOURCE_PARTS:
        root = checkout / part
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in files:
            relative = path.relative_to(checkout)
            if not path.is_file() or any(
                fnmatch.fnmatch(name, pattern) for name in relative.parts for pattern in _NOT_SOURCE
            ):
                continue
            digest.update(relative.as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _record(checkout: Path, *, manager: bool, editable: bool) -> dict[str, object]:
    return {
        "checkout": str(checkout),
        "source": source_digest(checkout),
        "manager": manager,
        "editable": editable,
    }


def already_installed(venv: Path, checkout: Path, *, manager: bool, editable: bool) -> bool:
    """Whether ``venv`` holds exactly this checkout's code, with the Manager if asked for."""
    try:
        recorded = json.loads((venv / INSTALL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict):
        return False
    scripts = ["ocm", "ocm-manager"] if manager else ["ocm"]
    if not all((venv / "bin" / name).is_file() for name in scripts):
        return False
    wanted = _record(checkout, manager=manager, editable=editable)
    return (
        recorded.get("checkout") == wanted["checkout"]
        and recorded.get("source") == wanted["source"]
        and recorded.get("editable") == editable
        and (recorded.get("manager") is True or not manager)
    )


def pip_install(venv: Path, checkout: Path, *, manager: bool, editable: bool) -> None:
    """Install the checkout unless the environment already has exactly this code."""
    if already_installed(venv, checkout, manager=manager, editable=editable):
        extra = " with the Manager" if manager else ""
        print(
            f"{PROGRAM}: {venv} already has this checkout's code{extra}; nothing to do (pip "
            "skipped)",
            flush=True,
        )
        return
    record = venv / INSTALL_RECORD
    record.unlink(missing_ok=True)  # a failed or interrupted pip run leaves no stale record
    _pip_install_checkout(venv, checkout, manager=manager, editable=editable)
    record.write_text(
        json.dumps(_record(checkout, manager=manager, editable=editable), indent=2) + "\n",
        encoding="utf-8",
    )


def _pip_install_checkout(venv: Path, checkout: Path, *, manager: bool, editable: bool) -> None:
    """``pip install --upgrade [-e] <checkout>[manager]`` with the environment's own pip.

    A regular install builds from a temporary copy: setuptools builds in the source tree and
    reuses its ``build/`` folder, so a module deleted from the checkout would live on in
    every later install. An editable install must point at the checkout itself.
    """
    if editable:
        _pip(venv, checkout, checkout, manager=manager, editable=True)
        return
    with tempfile.TemporaryDirectory(prefix="ocm-install-") as scratch:
        source = Path(scratch) / "source"
        try:
            shutil.copytree(
                checkout, source, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE)
            )
        except (OSError, shutil.Error) as err:
            raise InstallError(
                f"could not copy {checkout} to build it: {err}",
                "check that the checkout is readable and rerun",
            ) from err
        _pip(venv, checkout, source, manager=manager, editable=False)


def _pip_install(venv: Path, *requirements: str) -> list[str]:
    return [
        str(venv_python(venv)),
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--quiet",
        "--disable-pip-version-check",
        *requirements,
    ]


def _upgrade_pip(venv: Path) -> None:
    """Bring the environment's pip up to date before it writes ocm's console scripts.

    The pip bundled with older Pythons writes a wrapper that imports ``re`` before ocm
    starts (about 10 ms on every ``ocm`` run); current pip does not. Offline this fails,
    and the bundled pip still installs ocm correctly, so a failure is only a note.
    """
    try:
        result = subprocess.run(
            _pip_install(venv, "pip"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return
    if result.returncode != 0:
        print(
            f"{PROGRAM}: could not upgrade pip in {venv}; installing with the pip it has",
            flush=True,
        )


def _pip(venv: Path, checkout: Path, source: Path, *, manager: bool, editable: bool) -> None:
    _upgrade_pip(venv)
    requirement = f"{source}[{MANAGER_EXTRA}]" if manager else str(source)
    command = _pip_install(venv, *(["--editable", requirement] if editable else [requirement]))
    what = "an editable install of " if editable else ""
    extra = " with the Manager" if manager else ""
    print(f"{PROGRAM}: installing {what}{checkout}{extra} into {venv} (pip)", flush=True)
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
    except OSError as err:
        raise InstallError(
            f"could not run pip in {venv}: {err.strerror or err}", "remove that directory and rerun"
        ) from err
    if result.returncode != 0:
        raise InstallError(
            f"pip could not install {checkout} into {venv} (exit status {result.returncode})",
            "see pip's output above, fix the cause and rerun `python3 -m install`",
        )


def run_link_hook(venv: Path, *, force: bool, bin_dir: Path) -> int:
    """Run ``python -m install link`` with the environment's own interpreter.

    From inside the environment (not from the checkout) so the hook sees exactly what a
    plain ``pip install`` user would: the installed scripts and the installed ``install``.
    """
    command = [str(venv_python(venv)), "-m", "install", "link", "--bin-dir", str(bin_dir)]
    if force:
        command.append("--force")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        return subprocess.run(
            command, cwd=venv, env=env, stdin=subprocess.DEVNULL, check=False
        ).returncode
    except OSError as err:
        raise InstallError(
            f"could not run {command[0]}: {err.strerror or err}",
            "remove the environment and rerun `python3 -m install`",
        ) from err
