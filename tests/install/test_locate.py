"""``install.locate.describe()``: what ``ocm status`` reports about the installation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from install import locate
from install.environment import Environment
from install.links import link_all


def _describe(env: Environment, bin_dir: Path, argv0: str | None = None) -> dict[str, object]:
    return locate.describe(
        argv0=argv0 or str(bin_dir / "ocm"),
        prefix=str(env.prefix),
        bin_dir=bin_dir,
        python=str(env.prefix / "bin" / "python"),
    )


def test_link_points_here(
    fake_env: Callable[..., Environment], local_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_env()
    link_all(env, local_bin)
    monkeypatch.setenv("PATH", f"{local_bin}:/usr/bin")
    info = _describe(env, local_bin)
    assert info["linkState"] == locate.HERE
    assert info["script"] == os.path.realpath(env.scripts["ocm"])
    assert info["linkTarget"] == str(env.scripts["ocm"])
    assert info["binDirOnPath"] is True
    assert info["fix"] is None
    json.dumps(info)  # `ocm status --json` prints it as is
    assert locate.summary_lines(info)[1] == f"link: {local_bin / 'ocm'} runs this ocm"


def test_link_here_but_bin_dir_not_on_path(
    fake_env: Callable[..., Environment], local_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_env()
    link_all(env, local_bin)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    info = _describe(env, local_bin, argv0=str(env.scripts["ocm"]))
    assert info["linkState"] == locate.HERE and info["binDirOnPath"] is False
    assert 'export PATH="$HOME/.local/bin:$PATH"' in str(info["fix"])


def test_run_as_python_dash_m_finds_the_environments_script(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    link_all(env, local_bin)
    info = _describe(env, local_bin, argv0="/somewhere/ocm/__main__.py")
    assert info["script"] == os.path.realpath(env.scripts["ocm"])
    assert info["linkState"] == locate.HERE


def test_no_link(fake_env: Callable[..., Environment], local_bin: Path) -> None:
    env = fake_env()
    info = _describe(env, local_bin, argv0=str(env.scripts["ocm"]))
    assert info["linkState"] == locate.ABSENT and info["linkTarget"] is None
    assert info["fix"] == (
        f"to put this ocm on PATH, run `{env.prefix / 'bin' / 'python'} -m install link`"
    )


def test_link_points_to_another_installation(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    other, env = fake_env("other"), fake_env()
    link_all(other, local_bin)
    info = _describe(env, local_bin, argv0=str(env.scripts["ocm"]))
    assert info["linkState"] == locate.ELSEWHERE
    assert info["linkTarget"] == str(other.scripts["ocm"])
    assert "-m install link --force" in str(info["fix"])
    assert f"runs another ocm ({other.scripts['ocm']})" in locate.summary_lines(info)[1]


def test_dangling_link_after_an_uninstall_comes_with_the_fix(
    fake_env: Callable[..., Environment], local_bin: Path, tmp_path: Path
) -> None:
    removed, env = fake_env("removed"), fake_env()
    link_all(removed, local_bin)
    removed.scripts["ocm"].unlink()
    info = _describe(env, local_bin, argv0="/usr/lib/python3/site-packages/ocm/__main__.py")
    assert info["linkState"] == locate.DANGLING
    assert info["linkTarget"] == str(removed.scripts["ocm"])
    assert info["fix"] == (
        f"{local_bin / 'ocm'} points to {removed.scripts['ocm']}, which no longer exists; "
        f"run `python3 -m install` from a checkout or remove the link (`rm {local_bin / 'ocm'}`)"
    )


def test_script_that_pip_put_in_the_bin_dir_is_here(fake_env: Callable[..., Environment]) -> None:
    env = fake_env("user", is_venv=False)
    info = _describe(env, env.prefix / "bin", argv0=str(env.scripts["ocm"]))
    assert info["linkState"] == locate.HERE


def test_describe_defaults_to_the_running_process_and_stays_cheap(isolated_env: Path) -> None:
    # What `ocm status` will do: import it and call it with no arguments, in a fresh process.
    code = (
        "import json, sys; from install import locate; "
        "print(json.dumps({'info': locate.describe(), "
        "'modules': sorted(m for m in sys.modules if m.split('.')[0] in "
        "('importlib', 'subprocess', 'sysconfig', 'venv', 'ensurepip'))}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=isolated_env
    )
    out = json.loads(result.stdout)
    info = out["info"]
    assert info["prefix"] == sys.prefix
    assert info["link"] == str(isolated_env / ".local" / "bin" / "ocm")
    assert info["linkState"] == locate.ABSENT
    assert "importlib.metadata" not in out["modules"] and "subprocess" not in out["modules"]
