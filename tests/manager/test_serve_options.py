"""``ocm-manager serve`` options: a bad value is one usage line before anything starts.
Real ``ocm-manager`` processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.processes import manager_command


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    # A refused value stops serve at once; the timeout only guards against one that serves.
    return subprocess.run(
        manager_command(
            "serve", "--port", "0", "--no-opencode", "--data-dir", str(data_dir), *args
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--threads", "0"),
        ("--threads", "-300"),
        ("--threads", "100000"),
        ("--max-streams", "0"),
        ("--port", "70000"),
        ("--port", "-1"),
        ("--port", "x"),
        ("--host", "nosuchhost.invalid"),
        ("--max-upload-bytes", "0"),
        ("--max-upload-bytes", "-1"),
        ("--max-archive-bytes", "-1"),
        ("--max-archive-members", "-1"),
        ("--head-timeout", "0"),
        ("--stall-timeout", "-1"),
        ("--stall-timeout", "nan"),
        ("--trusted-proxy", "notanip"),
        ("--web-app-url", "notaurl"),
        ("--web-app-url", "ftp://host"),
        ("--opencode-url", "notaurl"),
        ("--web-app-port", "70000"),
    ],
)
def test_a_bad_value_is_one_usage_line(tmp_path, option, value):
    result = _serve(tmp_path / "data", option, value)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ocm-manager: argument {option}: {value!r} is not ")
    assert "; give " in line
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_bad_trusted_proxy_from_the_environment_is_refused_too(tmp_path, monkeypatch):
    monkeypatch.setenv("OCM_MANAGER_TRUSTED_PROXY", "notanip")
    result = _serve(tmp_path / "data")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("ocm-manager: argument --trusted-proxy: 'notanip' is not an IP")


def test_argparse_own_errors_are_one_line_too(tmp_path):
    result = _serve(tmp_path / "data", "--no-such-option")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "ocm-manager: unrecognized arguments: --no-such-option; see `ocm-manager --help`"
    ]
