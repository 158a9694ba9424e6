"""``--help``, ``--version`` and ``status`` work offline, and import nothing they do not need."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocm import __version__
from tests.client import standin
from tests.client.conftest import REPO_ROOT, run_ocm

COMMANDS = ["login", "logout", "status", "list", "use", "push", "pull"]


def test_version_and_help_everywhere_without_a_manager(tmp_path: Path) -> None:
    env = {"OPENCODE_MANAGER_URL": "http://127.0.0.1:9", "OCM_TOKEN": "x"}
    version = run_ocm("--version", env=env)
    assert (version.returncode, version.stdout) == (0, f"ocm {__version__}\n")
    top = run_ocm("--help", env=env)
    assert top.returncode == 0
    for name in COMMANDS:
        assert name in top.stdout
        sub = run_ocm(name, "--help", env=env)
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: ocm {name}")
    assert not (tmp_path / "home" / ".config").exists()


def test_status_only_asks_for_health_with_the_token_in_its_header(tmp_path: Path) -> None:
    with standin.serve() as server:
        server.json_route(
            "/api/health", {"status": "ok", "opencode": {"state": "running"}, "token": "accepted"}
        )
        assert run_ocm("login", "--no-verify", server.url, "tok-123").returncode == 0
        text = run_ocm("status")
        data = run_ocm("status", "--json")
        # A token that cannot be a header value is named, and never sent.
        malformed = run_ocm("status", env={"OCM_TOKEN": "tok 123"})
    assert [(r["method"], r["path"]) for r in server.requests] == [("GET", "/api/health")] * 3
    sent = [r["headers"].get("Authorization") for r in server.requests]
    assert sent == ["Bearer tok-123", "Bearer tok-123", None]
    assert f"manager:   {server.url} (from state.json)" in text.stdout
    assert "reachable: yes, OpenCode on the Manager is running" in text.stdout
    assert "token:     present, from " in text.stdout
    assert "credentials.json; the Manager accepts it\n" in text.stdout
    report = json.loads(data.stdout)
    assert report["managerUrl"] == server.url and report["loggedIn"] is True
    assert report["token"]["store"] == "file" and report["version"] == __version__
    assert report["token"]["accepted"] is True
    assert "the token from the OCM_TOKEN environment variable is malformed" in malformed.stdout
    assert "accepts it" not in malformed.stdout and "rejects it" not in malformed.stdout


def test_status_says_nothing_of_the_token_when_the_manager_does_not(tmp_path: Path) -> None:
    """A Manager from before the token check answers health without a word on the token."""
    with standin.serve() as server:
        server.json_route("/api/health", {"status": "ok", "opencode": {"state": "running"}})
        assert run_ocm("login", "--no-verify", server.url, "tok-123").returncode == 0
        text = run_ocm("status")
        data = run_ocm("status", "--json")
    assert "credentials.json\n" in text.stdout
    assert json.loads(data.stdout)["token"]["accepted"] is None


PROBE = """\
import sys
from ocm.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("requests", "keyring", "platformdirs", "pathspec", "flask",
                           "http.client") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def imported_heavy(*args: str, input: str | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        input=input,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY=")][-1]
    return [m for m in line[len("HEAVY=") :].split(",") if m]


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["status"], ["status", "--json"], ["list", "--help"]]
)
def test_light_commands_import_no_heavy_library(args: list[str]) -> None:
    assert run_ocm("login", "--no-verify", "http://127.0.0.1:9", "tok").returncode == 0
    assert imported_heavy(*args) == []


def test_a_file_token_is_used_without_importing_keyring() -> None:
    with standin.serve() as server:
        server.json_route("/api/internal/opencode-workspaces", {"workspaces": []})
        assert run_ocm("login", server.url, "tok").returncode == 0
        assert imported_heavy("list") == ["http.client"]


@pytest.mark.parametrize("args", [["--version"], ["status"], ["status", "--json"]])
def test_the_fast_path_answers_like_argparse(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from ocm.cli import main
    from ocm.parser import parse

    assert main(args) == 0
    fast = capsys.readouterr()
    try:
        parsed = parse(args)
        assert parsed.handler(parsed) == 0
    except SystemExit as exc:  # argparse's own --version
        assert exc.code == 0
    slow = capsys.readouterr()
    assert fast == slow


@pytest.mark.parametrize("command", ["push", "pull"])
def test_the_fast_path_pushes_and_pulls_like_argparse(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocm.cli import main
    from ocm.commands import mirror
    from ocm.parser import parse

    calls: list[dict[str, bool]] = []
    monkeypatch.setattr(mirror, command, lambda **options: calls.append(options) or 0)
    assert main([command]) == 0
    parsed = parse([command])
    assert parsed.handler(parsed) == 0
    assert len(calls) == 2 and calls[0] == calls[1], calls


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Every command line under ``parser`` that runs something: ``login``, ``repo add``…"""
    found = [prefix] if prefix else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}".strip())
    return found


def test_an_unknown_option_is_named_before_a_missing_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ocm login --bogus` said "the following arguments are required: url": argparse checks
    positionals first, hiding the option that was mistyped. Every command names it."""
    from ocm.cli import main
    from ocm.parser import build_parser

    commands = _commands(build_parser(), "")
    assert {"login", "use", "push", "list"} <= set(commands)
    for command in commands:
        for bogus in ("--bogus", "-z", "--bogus=1"):
            assert main([*command.split(), bogus]) == 2, command
            err = capsys.readouterr().err
            assert err == f"ocm: unrecognized arguments: {bogus}; see `ocm {command} --help`\n"
    assert main(["login"]) == 2  # a missing argument alone is still named
    assert "the following arguments are required: url" in capsys.readouterr().err
