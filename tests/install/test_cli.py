"""``python -m install link|unlink`` and the installer's errors, as real processes.

The environment linked here is the one running the tests (an editable install of this
checkout with the Manager extra), so the links point at real console scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.install.conftest import CHECKOUT, run_installer

SCRIPTS = Path(sys.prefix) / "bin"
PATH_LINE = 'export PATH="$HOME/.local/bin:$PATH"'


def test_link_puts_both_scripts_in_local_bin_with_the_path_hint(
    local_bin: Path, tmp_path: Path
) -> None:
    result = run_installer("link", cwd=tmp_path, path="/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"ocm-cli: installed `ocm` at {local_bin / 'ocm'}",
        f"ocm-cli: installed `ocm-manager` at {local_bin / 'ocm-manager'}",
    ]
    assert lines[-1] == PATH_LINE
    assert os.readlink(local_bin / "ocm") == str(SCRIPTS / "ocm")
    assert os.readlink(local_bin / "ocm-manager") == str(SCRIPTS / "ocm-manager")
    assert result.stderr == ""


def test_rerunning_link_is_a_no_op_and_no_hint_when_on_path(
    local_bin: Path, tmp_path: Path
) -> None:
    path = f"{local_bin}:/usr/bin:/bin"
    assert run_installer("link", cwd=tmp_path, path=path).returncode == 0
    before = {p.name: os.lstat(p) for p in local_bin.iterdir()}
    result = run_installer("link", cwd=tmp_path, path=path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"ocm-cli: `ocm` already installed at {local_bin / 'ocm'}; nothing to do",
        f"ocm-cli: `ocm-manager` already installed at {local_bin / 'ocm-manager'}; nothing to do",
    ]
    after = {p.name: os.lstat(p) for p in local_bin.iterdir()}
    assert {n: (s.st_ino, s.st_mtime_ns) for n, s in after.items()} == {
        n: (s.st_ino, s.st_mtime_ns) for n, s in before.items()
    }


def test_foreign_file_fails_the_link_until_forced(local_bin: Path, tmp_path: Path) -> None:
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").write_text("#!/bin/sh\necho another ocm\n")
    result = run_installer("link", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ocm-cli: left {local_bin / 'ocm'} alone: it is a file that is not a link, not ours; "
        "remove it or rerun with --force to replace it"
    )
    assert (local_bin / "ocm").read_text() == "#!/bin/sh\necho another ocm\n"
    assert os.readlink(local_bin / "ocm-manager") == str(SCRIPTS / "ocm-manager")

    forced = run_installer("link", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(
        f"ocm-cli: installed `ocm` at {local_bin / 'ocm'} (replaced a file that is not a link)"
    )
    assert os.readlink(local_bin / "ocm") == str(SCRIPTS / "ocm")


def test_unlink_removes_ours_and_leaves_a_foreign_link(local_bin: Path, tmp_path: Path) -> None:
    assert run_installer("link", cwd=tmp_path).returncode == 0
    foreign = tmp_path / "elsewhere" / "ocm-manager"
    foreign.parent.mkdir()
    foreign.write_text("#!/bin/sh\n")
    (local_bin / "ocm-manager").unlink()
    (local_bin / "ocm-manager").symlink_to(foreign)

    result = run_installer("unlink", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"ocm-cli: removed {local_bin / 'ocm'} (a link to {SCRIPTS / 'ocm'})",
        f"ocm-cli: left {local_bin / 'ocm-manager'} alone: it is a link to {foreign}, "
        "not this environment's; remove it yourself if you no longer need it",
    ]
    assert not os.path.lexists(local_bin / "ocm")
    assert os.readlink(local_bin / "ocm-manager") == str(foreign)


def test_bin_dir_option_and_environment_variable(tmp_path: Path, local_bin: Path) -> None:
    chosen = tmp_path / "tools" / "bin"
    result = run_installer("link", "--bin-dir", str(chosen), cwd=tmp_path)
    assert result.returncode == 0 and (chosen / "ocm").is_symlink()
    from_env = tmp_path / "from-env"
    result = run_installer("link", cwd=tmp_path, extra_env={"OCM_BIN_DIR": str(from_env)})
    assert result.returncode == 0 and (from_env / "ocm").is_symlink()
    assert f'export PATH="{from_env}:$PATH"' in result.stdout
    assert not local_bin.exists()


def _bare_venv(path: Path) -> Path:
    """A real virtual environment without pip or ocm (cheap: no ensurepip)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def test_link_in_an_environment_without_ocm_says_what_to_do(
    tmp_path: Path, local_bin: Path
) -> None:
    python = _bare_venv(tmp_path / "empty")
    # The checkout on PYTHONPATH makes `install` importable, as from a checkout's folder.
    result = run_installer(
        "link", python=python, cwd=tmp_path, extra_env={"PYTHONPATH": str(CHECKOUT)}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ocm-cli: ocm is not installed in this Python environment ({tmp_path / 'empty'}); "
        f"run `python3 -m install` from a checkout, or `{python} -m pip install <checkout>` "
        "first"
    )
    assert not local_bin.exists()


def test_pip_failure_is_one_line_and_links_nothing(tmp_path: Path, local_bin: Path) -> None:
    venv = tmp_path / "no-pip"
    _bare_venv(venv)  # a working venv whose pip is missing: pip itself fails
    result = run_installer("--venv", str(venv))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"ocm-cli: pip could not install {CHECKOUT} into {venv} (exit status 1); "
        "see pip's output above, fix the cause and rerun `python3 -m install`"
    )
    assert not local_bin.exists()


def test_a_directory_that_is_not_a_venv_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    result = run_installer("--venv", str(target))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ocm-cli: {target} exists and is not a virtual environment; "
        "choose another place with --venv, or move it away and rerun"
    )
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_missing_venv_support_names_the_debian_package(tmp_path: Path, isolated_env: Path) -> None:
    # Debian and Ubuntu leave ensurepip out unless python3-venv is installed; this stand-in
    # makes the import fail the same way.
    shadow = tmp_path / "shadow"
    (shadow / "ensurepip").mkdir(parents=True)
    (shadow / "ensurepip" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ensurepip'\")\n"
    )
    result = run_installer(extra_env={"PYTHONPATH": str(shadow)})
    version = sysconfig.get_python_version()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ocm-cli: this Python ({sys.executable}) cannot create virtual environments: its "
        "venv/ensurepip modules are missing; install them (Debian/Ubuntu: "
        f"`sudo apt install python{version}-venv`) and rerun"
    )
    assert not (isolated_env / ".local" / "share" / "ocm").exists()


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = run_installer("link", "--bogus", cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr


def test_the_installer_also_runs_by_its_folder_path(tmp_path: Path) -> None:
    # `python3 ~/src/ocm/install link`: its own folder must not hide the stdlib's venv module.
    bin_dir = tmp_path / "bin"
    result = subprocess.run(
        [sys.executable, str(CHECKOUT / "install"), "link", "--bin-dir", str(bin_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert os.readlink(bin_dir / "ocm") == str(SCRIPTS / "ocm")
