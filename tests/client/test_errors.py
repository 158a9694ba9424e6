"""Every failure a user can cause: one ``ocm: what; what to do`` line, the right exit code, no
traceback, nothing half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ocm import api
from ocm.cli import main
from ocm.errors import ManagerError
from tests.client import standin
from tests.client.conftest import (
    REPO_ROOT,
    AddedRepo,
    Recorder,
    assert_one_error,
    config,
    run_ocm,
)
from tests.support.disk import fill_up, needs_mount, small_disk
from tests.support.env import without_opencode
from tests.support.processes import RunningManager, ocm_command


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_wrong_token_at_login_saves_nothing(manager: RunningManager, tmp_path: Path) -> None:
    result = run_ocm("login", manager.url, input="wrong-token\n")
    assert assert_one_error(result, 1) == (
        f"ocm: token rejected by {manager.url}, nothing was saved; check the token you were"
        " given, or ask the Manager's admin for the current one (`ocm-manager token rotate`"
        " makes a new one, but signs out every other user and browser)"
    )
    assert "wrong-token" not in result.stderr
    assert not config(tmp_path).exists()


def test_login_at_the_web_app_port_names_the_managers_url_and_rotates_nothing(
    manager_factory: Callable[..., RunningManager], tmp_path: Path
) -> None:
    """The port `serve` announces as OpenCode's web app answers 401 `not_signed_in` to any
    token: taken for a rejected token, it led to advice that ends with a rotation."""
    manager = manager_factory(env=without_opencode(tmp_path / "bin"))  # it has a web app
    web_app = manager.web_app_url()
    result = run_ocm("login", web_app, input=manager.token + "\n")
    line = assert_one_error(
        result,
        1,
        f"ocm: {web_app} is a Manager's OpenCode web app, not the Manager's API (the token was"
        " not checked), nothing was saved;",
        f"use the Manager's own URL: `ocm login {manager.url}`",
    )
    assert "rejected" not in line and "token rotate" not in line
    assert not config(tmp_path).exists()


def test_login_to_an_unreachable_manager_names_the_url_and_saves_nothing(tmp_path: Path) -> None:
    url = closed_port_url()
    result = run_ocm("login", url, "some-token")
    assert_one_error(
        result,
        1,
        f"cannot reach the Manager at {url} (connection refused)",
        "nothing was saved",
        "check the URL and that the Manager is running",
    )
    assert not config(tmp_path).exists()


def test_an_https_url_for_the_plain_http_manager_says_to_use_http(
    manager: RunningManager, tmp_path: Path
) -> None:
    """The Manager took the connection and refused the handshake: not "no connection within
    5 s", but what to type instead; and the token went nowhere."""
    port = manager.url.rsplit(":", 1)[1]
    url = f"https://127.0.0.1:{port}"
    wanted = (
        f"ocm: cannot reach the Manager at {url} (it does not answer TLS: it may serve plain"
        f" HTTP){{}}; use http://127.0.0.1:{port} instead, or check the URL"
    )
    login = run_ocm("login", url, input=manager.token + "\n")
    assert assert_one_error(login, 1) == wanted.format(", nothing was saved")
    assert not config(tmp_path).exists()
    listed = run_ocm("list", env={"OPENCODE_MANAGER_URL": url, "OCM_TOKEN": manager.token})
    assert assert_one_error(listed, 1) == wanted.format("")
    status = run_ocm("status", env={"OPENCODE_MANAGER_URL": url})
    assert "reachable: NO, the Manager is not reachable (it does not answer TLS" in status.stdout
    for result in (login, listed):
        assert "within" not in result.stderr
        assert manager.token not in result.stderr + result.stdout
    assert manager.token not in manager.log()


def test_commands_against_an_unreachable_manager(tmp_path: Path, recorder: Recorder) -> None:
    url = closed_port_url()
    assert run_ocm("login", "--no-verify", url, "tok").returncode == 0
    for args in (["list"], ["use", "1"], []):
        assert_one_error(run_ocm(*args, cwd=tmp_path), 1, f"cannot reach the Manager at {url}")
    assert not recorder.called()


def test_without_git_a_checkout_is_not_called_no_repository(
    login: RunningManager, recorder: Recorder, tmp_path: Path
) -> None:
    """With no ``git`` on PATH, push and pull said the checkout "is not inside a git
    repository", and bare ``ocm`` took the last used repo, as outside a checkout."""
    checkout = tmp_path / "proj"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    no_git = {"PATH": str(recorder.bin_dir)}  # only the recording opencode
    what = "cannot run git: it is not installed, or not on PATH"
    for args in (["push"], ["pull"]):
        assert_one_error(
            run_ocm(*args, cwd=checkout, env=no_git), 1, what, "; install git, then run"
        )
    assert_one_error(run_ocm(cwd=checkout, env=no_git), 1, what, "or attach by name: `ocm use")
    assert not recorder.called()


def test_in_a_folder_deleted_since_the_shell_entered_it(
    login: RunningManager, recorder: Recorder, tmp_path: Path
) -> None:
    """A shell still in a checkout deleted (or cloned anew) in another terminal: push, pull
    and bare ``ocm`` ended in "unexpected error (FileNotFoundError) … report it"."""
    gone = tmp_path / "gone"
    for args in (["push"], ["pull"], []):
        gone.mkdir()
        command = " ".join(shlex.quote(word) for word in ocm_command(*args))
        result = subprocess.run(
            ["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec {command}'],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_one_error(
            result,
            1,
            "the folder this shell is in no longer exists (deleted or moved since it was",
            "; `cd` into the checkout again, then run the command again",
        )
    assert not recorder.called()


@pytest.mark.parametrize(
    ("url", "todo"),
    [
        ("manager.example.com", "write it with its scheme: https://manager.example.com"),
        ("127.0.0.1:5003", "write it with its scheme: http://127.0.0.1:5003"),
        ("5003", "write it like https://"),
        ("ftp://host/x", "write it like"),
        ("https://", "write it like"),
        ("http://host/?q=1", "give just the scheme, host, port and path prefix"),
        ("http://host:port", "write it like http://127.0.0.1:5003"),
        ("http://[::1", "is not a valid URL; write it like"),
        ("http://:5003", "needs a scheme and a host"),
        ("http://manager example.com", "contains a space or a control character"),
        ("http://manager\texample.com", "contains a space or a control character"),
        ("http://a..b", "a host name that cannot be looked up"),
        (f"http://{'a' * 64}.example.com", "a host name that cannot be looked up"),
        ("http://例え..jp", "a host name that cannot be looked up"),
    ],
)
def test_login_url_without_scheme_or_host_is_a_usage_error(
    url: str, todo: str, tmp_path: Path
) -> None:
    assert_one_error(run_ocm("login", url, "tok"), 2, repr(url), todo)
    assert not config(tmp_path).exists()


def test_login_with_no_token_on_stdin_is_a_usage_error(tmp_path: Path) -> None:
    assert_one_error(
        run_ocm("login", "http://127.0.0.1:9", input=""), 2, "no token given", "pipe it on stdin"
    )
    assert not config(tmp_path).exists()


@pytest.mark.parametrize(
    ("canned", "needles"),
    [
        (
            standin.Canned(200, b"<html>hello</html>", "text/html"),
            ["/api/internal/opencode-workspaces did not answer with JSON", "an ocm Manager"],
        ),
        (
            standin.Canned(500, b"<html>Internal Server Error</html>", "text/html"),
            ["answered HTTP 500 (text/html, not an ocm JSON error)", "Manager's log"],
        ),
        (
            standin.Canned(500, b'{"error": "internal", "message": "database is locked."}'),
            ["answered HTTP 500: database is locked", "check the Manager's log"],
        ),
        (standin.Canned(502, b"Bad Gateway", "text/plain"), ["answered HTTP 502 (text/plain"]),
        (standin.Canned(200, b'{"unexpected": true}'), ["answered an unexpected shape"]),
        (
            standin.Canned(200, b'{"workspaces": [{"name": "no id"}]}'),
            ["answered an unexpected shape"],
        ),
        (standin.Canned(301, b"", "text/html"), ["redirects to"]),
        (  # json.loads raises RecursionError, not ValueError, for this
            standin.Canned(200, b"[" * 100_000),
            ["/api/internal/opencode-workspaces did not answer with JSON", "an ocm Manager"],
        ),
    ],
)
def test_a_manager_answering_garbage(
    canned: standin.Canned, needles: list[str], tmp_path: Path
) -> None:
    with standin.serve({"/api/internal/opencode-workspaces": canned}) as server:
        login = run_ocm("login", server.url, "tok")
        listed = run_ocm("list", env={"OPENCODE_MANAGER_URL": server.url, "OCM_TOKEN": "tok"})
    assert_one_error(login, 1, "nothing was saved", *needles)
    assert not config(tmp_path).exists()
    assert_one_error(listed, 1, *needles)
    assert "tok" not in login.stderr.replace("token", "")


def test_status_of_a_server_answering_json_nested_too_deep(tmp_path: Path) -> None:
    nested = standin.Canned(200, b"[" * 100_000)
    with standin.serve({"/api/health": nested}) as server:
        status = run_ocm("status", env={"OPENCODE_MANAGER_URL": server.url})
    assert status.returncode == 0 and not status.stderr, status.stderr
    assert "reachable: NO, the Manager is not reachable (/api/health did not answer JSON)" in (
        status.stdout
    )


def test_a_server_that_never_stops_answering(tmp_path: Path) -> None:
    """Read whole, a terabyte announced and sent without end was a MemoryError ("unexpected
    error ... report it"), or all of memory: ocm reads no more than a Manager could send."""
    endless = standin.Canned(200, b" " * 1024**2, endless=True)
    with standin.serve({"/api/internal/opencode-workspaces": endless}) as server:
        login = run_ocm("login", server.url, "tok")
        sent = server.sent
    assert_one_error(login, 1, "did not answer with JSON", "nothing was saved", "an ocm Manager")
    assert sent < 64 * 1024**2, sent  # what ocm read, and what the socket buffers held
    assert not config(tmp_path).exists()


# What a hostile server could print: clear the screen, retitle the window, write the
# clipboard (OSC 52), and an override that shows the rest of the line reversed.
TERMINAL_TRICKS = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZWNobyBoaQ==\x07\u202e\x9b31m"
TRICKS_SHOWN = "\\x1b[2J\\x1b]0;owned\\x07\\x1b]52;c;ZWNobyBoaQ==\\x07\\u202e\\x9b31m"


def test_what_a_server_says_cannot_drive_the_terminal(tmp_path: Path) -> None:
    """A Manager's words reach the terminal with every control shown as its escape: in an
    error line, in `ocm list`'s table and in `ocm status`."""
    repo = {"repoId": 7, "name": f"n{TERMINAL_TRICKS}", "branch": f"b{TERMINAL_TRICKS}"}
    env = {"OCM_TOKEN": "tok"}
    with standin.serve() as server:
        env["OPENCODE_MANAGER_URL"] = server.url
        server.json_route("/api/internal/opencode-workspaces", {"workspaces": [repo]})
        server.json_route("/api/health", {"opencode": {"state": TERMINAL_TRICKS}, "version": "1"})
        listed = run_ocm("list", env=env)
        status = run_ocm("status", env=env)
        refusal = {"error": "x", "message": f"refused {TERMINAL_TRICKS}"}
        server.json_route("/api/internal/opencode-workspaces", refusal, status=400)
        failed = run_ocm("list", env=env)
    assert listed.returncode == 0 and not listed.stderr, listed.stderr
    assert f"n{TRICKS_SHOWN}  b{TRICKS_SHOWN}  ready" in listed.stdout
    assert f"OpenCode on the Manager is {TRICKS_SHOWN}" in status.stdout
    assert_one_error(failed, 1, f"answered HTTP 400: refused {TRICKS_SHOWN}")
    for output in (listed.stdout, status.stdout, failed.stderr):
        assert not any(c in output for c in "\x1b\x07\x9b\u202e"), repr(output)


def test_list_lines_up_names_in_any_script_by_terminal_columns(tmp_path: Path) -> None:
    """CJK and emoji take two columns, a combining accent none."""
    repos = [
        {"repoId": 1, "name": "api", "branch": "main"},
        {"repoId": 2, "name": "日本", "branch": "機能/検索"},
        {"repoId": 3, "name": "cafe\u0301", "branch": "😀"},
    ]
    with standin.serve() as server:
        server.json_route("/api/internal/opencode-workspaces", {"workspaces": repos})
        env = {"OCM_TOKEN": "tok", "OPENCODE_MANAGER_URL": server.url}
        listed = run_ocm("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "ID  NAME  BRANCH     STATUS",
        "1   api   main       ready",
        "2   日本  機能/検索  ready",
        "3   cafe\u0301  😀         ready",
    ]


def test_a_url_that_is_not_a_manager(tmp_path: Path) -> None:
    with standin.serve() as server:  # answers 404 HTML everywhere
        result = run_ocm("login", server.url, "tok")
    assert_one_error(
        result, 1, f"{server.url} has no /api/internal/opencode-workspaces", "an ocm Manager"
    )


@pytest.mark.parametrize(("path", "sent"), [("/api", "/api"), ("/präfix/", "/pr%C3%A4fix")])
def test_a_manager_url_with_a_path_it_does_not_serve(
    path: str, sent: str, manager: RunningManager, tmp_path: Path
) -> None:
    # The Manager's own 404 for an unknown path is not about a repo: no `ocm list` advice
    # (that cannot work before a login) and none of its HTML-era wording. A path outside
    # ASCII is sent percent-encoded, as a browser sends it.
    result = run_ocm("login", f"{manager.url}{path}", input=manager.token + "\n")
    line = assert_one_error(
        result,
        1,
        f"{manager.url}{sent} has no /api/internal/opencode-workspaces",
        "nothing was saved",
        f"without the path {sent}: {manager.url})",
    )
    assert "ocm list" not in line and "requested URL" not in line
    assert not config(tmp_path).exists()


@pytest.mark.parametrize(
    "content",
    [
        "",
        "   \n",
        "{not json",
        "[1, 2]",
        '{"managerUrl": 5}',
        "\x00\xff\xfe",
        '{"managerUrl": "manager:5003"}',
        '{"managerUrl": "http://a b"}',
    ],
)
def test_corrupt_or_empty_state_means_not_logged_in(
    content: str, tmp_path: Path, recorder: Recorder
) -> None:
    state = config(tmp_path) / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(content.encode("latin-1"))
    for args in (["list"], [], ["use", "x"]):
        line = assert_one_error(run_ocm(*args, cwd=tmp_path), 1, "not logged in", "ocm login <url>")
        assert "rm " not in line, line  # a file: the login writes it anew (no `rm -r`)
    status = run_ocm("status")
    assert status.returncode == 0 and "not logged in" in status.stdout
    assert "Traceback" not in status.stderr
    assert not recorder.called()
    assert state.read_bytes() == content.encode("latin-1")


def test_login_replaces_a_corrupt_state(manager: RunningManager, tmp_path: Path) -> None:
    state = config(tmp_path) / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{oops")
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    assert json.loads(state.read_text())["managerUrl"] == manager.url


def test_corrupt_credentials_mean_no_token(manager: RunningManager, tmp_path: Path) -> None:
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    (config(tmp_path) / "credentials.json").write_text('{"version": 1, "tokens": [')
    assert_one_error(
        run_ocm("list"), 1, f"no token for {manager.url}", f"run `ocm login {manager.url}`"
    )


@needs_mount
def test_a_full_config_disk_is_one_line_and_keeps_the_saved_login(
    manager: RunningManager, add_repo: Callable[..., AddedRepo], tmp_path: Path
) -> None:
    """ocm's config folder on a disk with no room left: `ocm login` said it could not write
    "the output" (it was the token's file), and `ocm use` to check the folder's permissions.
    Each names the file and says to free space, and the saved login is as it was."""
    add_repo("proj")
    folder = config(tmp_path)
    with small_disk(folder, "1m"):
        assert run_ocm("login", manager.url, input=manager.token + "\n").returncode == 0
        saved = {path.name: path.read_bytes() for path in folder.iterdir()}
        fill_up(folder)

        login = run_ocm("login", manager.url, input=manager.token + "\n")
        use = run_ocm("use", "proj")

        for done, name in ((login, "credentials.json"), (use, "state.json")):
            line = assert_one_error(
                done,
                1,
                f"ocm: cannot write {folder / name} (No space left on device); free some space"
                f" on the disk of {folder}, or set OCM_CONFIG_DIR to a folder on another disk",
            )
            assert "permissions" not in line
        kept = {path.name: path.read_bytes() for path in folder.iterdir()}
        assert {name: kept[name] for name in saved} == saved
        assert sorted(kept) == sorted([*saved, ".filler-0"])


def test_a_bad_manager_url_in_the_environment(tmp_path: Path) -> None:
    result = run_ocm("list", env={"OPENCODE_MANAGER_URL": "manager:5003", "OCM_TOKEN": "t"})
    assert_one_error(
        result,
        2,
        "OPENCODE_MANAGER_URL 'manager:5003' needs a scheme",
        "; write it with its scheme: https://manager:5003",
    )


def test_a_url_without_its_scheme_is_written_out_and_that_works(
    manager: RunningManager, tmp_path: Path
) -> None:
    bare = manager.url.removeprefix("http://")
    line = assert_one_error(
        run_ocm("login", bare, input=manager.token + "\n"), 2, f"'{bare}' needs a scheme"
    )
    assert not config(tmp_path).exists()
    meant = line.rpartition("write it with its scheme: ")[2]
    assert meant == manager.url  # this machine's Manager listens on http
    logged_in = run_ocm("login", meant, input=manager.token + "\n")
    assert logged_in.returncode == 0, logged_in.stderr


@pytest.mark.parametrize(
    "args", [["bogus"], ["use"], ["login"], ["list", "--nope"], ["status", "extra"]]
)
def test_usage_errors_are_one_line_with_exit_2(args: list[str]) -> None:
    assert_one_error(run_ocm(*args), 2, "see `ocm")


@pytest.mark.parametrize(
    ("args", "help_of"),
    [
        (["pull", "--forc"], "ocm pull"),  # no abbreviation stands for --force
        (["push", "--forc", "--cre"], "ocm push"),
        (["push", "-f"], "ocm push"),
        (["list", "--js"], "ocm list"),
        (["--bogus"], "ocm"),
    ],
)
def test_an_unknown_option_points_at_its_commands_help(args: list[str], help_of: str) -> None:
    line = assert_one_error(run_ocm(*args), 2, "unrecognized arguments: ")
    assert line.endswith(f"see `{help_of} --help`"), line


def test_unexpected_errors_show_a_traceback_only_with_ocm_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocm.commands import status

    def explode(**_: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(status, "status", explode)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "ocm: unexpected error (RuntimeError); run again with OCM_DEBUG=1 for the "
        "traceback, and report it\n"
    )
    monkeypatch.setenv("OCM_DEBUG", "1")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--version"], ["status", "--json"], ["--help"]])
def test_output_that_cannot_be_written_is_a_failure(args: list[str]) -> None:
    # `ocm status --json > file` on a full disk: the output is lost, so exit 0 would lie.
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            ocm_command(*args),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            timeout=60,
        )
    result.stdout = ""
    assert_one_error(result, 1, "cannot write the output (No space left on device)")


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocm.commands import status

    def interrupted(**_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(status, "status", interrupted)
    assert main(["status"]) == 130
    assert capsys.readouterr().err == "ocm: interrupted\n"


def test_a_silent_host_fails_within_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request carries a connect timeout of a few seconds; hitting it names the URL.

    The host is silent because its listen queue is full: Linux then drops further SYNs,
    as a firewall that swallows them would."""
    assert api.CONNECT_TIMEOUT <= 10
    monkeypatch.setattr(api, "CONNECT_TIMEOUT", 0.5)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):  # fill the queue without accepting
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(ManagerError) as caught:
            api.ManagerClient(url, "tok").workspaces()
    assert caught.value.message == (
        f"cannot reach the Manager at {url} (no connection within 0.5 s); "
        "check the URL and that the Manager is running"
    )
