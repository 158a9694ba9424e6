"""``ocm-manager serve`` options: a bad value is one usage line before anything starts, and
where the Manager listens is said in a URL that works. Real ``ocm-manager`` processes."""

from __future__ import annotations

import argparse
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.processes import manager_command, start_manager


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
        ("--opencode-url", "http://opencode host:4096"),
        ("--opencode-url", "http://opencode..host:4096"),
        ("--web-app-url", "https://ocm.example.com:8443/\tapp"),
        ("--web-app-url", f"https://{'a' * 64}.example.com"),
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


def test_an_opencode_bin_that_cannot_run_is_one_usage_line(tmp_path):
    """It started anyway, with only a warning in its log, and every TUI then met a Manager
    without OpenCode."""
    not_executable = tmp_path / "opencode.txt"
    not_executable.write_text("not a program\n")
    for value, why in [
        (str(tmp_path / "nope" / "opencode"), "does not exist"),
        (str(not_executable), "is not an executable file"),
        ("no-such-opencode-here", "is not on PATH"),
    ]:
        result = subprocess.run(
            manager_command(
                "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
                "--opencode-bin", value,
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith(f"ocm-manager: argument --opencode-bin: {value!r} {why}; give "), (
            line
        )
        assert not (tmp_path / "data").exists()  # refused before anything was made


def test_without_git_serve_and_repo_add_refuse_before_anything_is_made(tmp_path):
    """The Manager keeps every repo with git: without it, serve started and every push
    failed, and `repo add` was "unexpected error (FileNotFoundError)"."""
    source = tmp_path / "source"
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    no_git = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    add = subprocess.run(
        manager_command("repo", "add", str(source), "--data-dir", str(tmp_path / "data")),
        capture_output=True,
        text=True,
        env=no_git,
        timeout=60,
    )
    for result in (_serve(tmp_path / "data", env=no_git), add):
        assert result.returncode == 1, result.stderr
        assert result.stderr.splitlines() == [
            "ocm-manager: cannot run git: it is not installed, or not on the Manager's PATH;"
            " install git (`sudo apt install git`), then run the command again"
        ]
    assert not (tmp_path / "data").exists()


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
        "ocm-manager: unrecognized arguments: --no-such-option; see `ocm-manager serve --help`"
    ]


@pytest.mark.parametrize(
    ("args", "help_of"),
    [
        (["repo", "remove", "x", "--del"], "repo remove"),  # never --delete-files
        (["repo", "list", "--js"], "repo list"),
        (["serve", "--thr", "2"], "serve"),
        (["repo", "add", "src", "--nam", "x"], "repo add"),
    ],
)
def test_options_are_never_abbreviated(tmp_path, args, help_of):
    result = subprocess.run(
        manager_command(*args, "--data-dir", str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("ocm-manager: unrecognized arguments: "), line
    assert line.endswith(f"see `ocm-manager {help_of} --help`"), line


def test_an_ipv6_address_is_written_in_brackets():
    from manager.server import http_url

    assert http_url("::1", 5663) == "http://[::1]:5663"
    assert http_url("127.0.0.1", 5663) == "http://127.0.0.1:5663"


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serve_on_ipv6_loopback_says_a_url_that_works(tmp_path):
    running = start_manager(
        tmp_path / "data", tmp_path / "serve.log", "--host", "::1", "--no-opencode"
    )
    try:
        assert running.url.startswith("http://[::1]:")
        assert requests.get(f"{running.url}/api/health", timeout=10).status_code == 200
        assert "clear text" not in running.log()  # loopback: nothing crosses a network
    finally:
        assert running.stop() == 0


def test_serving_beyond_loopback_warns_that_the_token_travels_in_clear(tmp_path):
    running = start_manager(
        tmp_path / "data", tmp_path / "serve.log", "--host", "0.0.0.0", "--no-opencode"
    )
    try:
        assert running.url.startswith("http://0.0.0.0:")
        lines = running.log().splitlines()
        [warning] = [line for line in lines if "WARNING" in line and "clear text" in line]
        assert "unless a TLS proxy fronts the Manager" in warning
    finally:
        assert running.stop() == 0


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Every command line under ``parser``: ``serve``, ``repo add``…"""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}".strip()) or [f"{prefix} {name}".strip()]
    return found


def test_an_unknown_option_is_named_before_a_missing_argument(capsys):
    """`repo add --bogus` said "the following arguments are required: source"."""
    from manager.cli import build_parser, main

    commands = _commands(build_parser(), "")
    assert {"serve", "token rotate", "repo add", "repo list", "repo remove"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as stopped:
            main([*command.split(), "--bogus"])
        assert stopped.value.code == 2
        assert capsys.readouterr().err == (
            f"ocm-manager: unrecognized arguments: --bogus; see `ocm-manager {command} --help`\n"
        )


def test_every_option_says_what_it_does():
    from manager.cli import build_parser

    def undocumented(parser: argparse.ArgumentParser, prog: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += undocumented(sub, f"{prog} {name}")
            elif action.option_strings and not action.help:
                missing.append(f"{prog} {action.option_strings[-1]}")
        return missing

    assert undocumented(build_parser(), "ocm-manager") == []
