"""Hostile or broken local files and settings, as a user meets them through the real CLI:
credentials.json others can read, malformed tokens from each store, a state.json that is a
directory, a URL carrying a password, OCM_TOKEN left set after logout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import AddedRepo, Recorder, assert_one_error, config, run_ocm
from tests.support.processes import RunningManager


@pytest.mark.parametrize(
    "url",
    ["http://user:s3cret-pw@127.0.0.1:5003", "https://only-user@manager.example", "http://:pw@h"],
)
def test_a_url_with_user_info_is_a_usage_error_that_never_echoes_it(
    url: str, tmp_path: Path
) -> None:
    result = run_ocm("login", url, input="token\n")
    line = assert_one_error(
        result, 2, "contains a user name or password", "the Manager token is the only credential"
    )
    for secret in ("s3cret-pw", "only-user", ":pw@"):
        assert secret not in line
    assert not config(tmp_path).exists()


def test_a_manager_url_from_the_environment_with_a_password_is_refused_too(
    tmp_path: Path,
) -> None:
    env = {"OPENCODE_MANAGER_URL": "http://me:hunter2@127.0.0.1:9", "OCM_TOKEN": "t"}
    line = assert_one_error(run_ocm("list", env=env), 2, "OPENCODE_MANAGER_URL contains")
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("file_mode", "dir_mode", "needle"),
    [
        (0o644, 0o700, "credentials.json: it is open to other users (mode 0644)"),
        (0o640, 0o700, "credentials.json: it is open to other users (mode 0640)"),
        (0o600, 0o777, "credentials.json: its folder is writable by other users (mode 0777)"),
    ],
)
def test_credentials_others_can_read_or_replace_are_refused_like_ssh_does(
    login: RunningManager, tmp_path: Path, file_mode: int, dir_mode: int, needle: str
) -> None:
    credentials = config(tmp_path) / "credentials.json"
    credentials.chmod(file_mode)
    config(tmp_path).chmod(dir_mode)
    line = assert_one_error(
        run_ocm("list"), 1, "refusing to use the token in", needle, "chmod 600", "token rotate"
    )
    assert login.token not in line
    # status still reports everything it knows, with the refusal as a warning (exit 0).
    status = run_ocm("status")
    assert status.returncode == 0
    assert f"warning:   refusing to use the token in {credentials}: " in status.stdout
    # The token line says why the token is not used, not that there is none.
    assert f"token:     not used: refusing to use the token in {credentials}: " in status.stdout, (
        status.stdout
    )
    assert "none for this URL" not in status.stdout
    # Following the advice makes the token usable again.
    credentials.chmod(0o600)
    config(tmp_path).chmod(0o700)
    assert run_ocm("list").returncode == 0


def test_logging_in_again_makes_an_exposed_file_private(
    login: RunningManager, tmp_path: Path
) -> None:
    (config(tmp_path) / "credentials.json").chmod(0o644)
    assert run_ocm("login", login.url, input=login.token + "\n").returncode == 0
    assert (config(tmp_path) / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert run_ocm("list").returncode == 0


@pytest.mark.parametrize(
    ("token", "flaw"),
    [
        ("abc\ndef", "it contains a line break"),
        ("abc\x01def", "it contains a control character"),
        ("abcdéf", "it contains a non-ASCII character"),
    ],
)
def test_a_malformed_token_is_named_with_its_store_not_a_connection_error(
    manager: RunningManager, tmp_path: Path, token: str, flaw: str
) -> None:
    from_env = run_ocm("list", env={"OPENCODE_MANAGER_URL": manager.url, "OCM_TOKEN": token})
    line = assert_one_error(
        from_env,
        1,
        f"the token from the OCM_TOKEN environment variable is malformed ({flaw})",
        "set OCM_TOKEN to exactly the token",
    )
    assert "cannot reach" not in line and "InvalidHeader" not in line

    assert run_ocm("login", "--no-verify", manager.url, "placeholder").returncode == 0
    credentials = config(tmp_path) / "credentials.json"
    credentials.write_text(json.dumps({"version": 1, "tokens": {manager.url: token}}))
    credentials.chmod(0o600)
    line = assert_one_error(
        run_ocm("list"),
        1,
        f"the token from {credentials} is malformed ({flaw})",
        f"run `ocm login {'<url>'}` again",
    )
    assert "cannot reach" not in line


def test_a_malformed_token_in_the_keyring_names_the_keyring(
    manager: RunningManager, file_keyring: Path
) -> None:
    store = file_keyring
    assert run_ocm("login", manager.url, input=manager.token + "\n").returncode == 0
    data = json.loads(store.read_text())
    assert len(data) == 1
    key = next(iter(data))
    data[key] = "line\nbreak"
    store.write_text(json.dumps(data))
    assert_one_error(
        run_ocm("list"),
        1,
        "the token from the OS keyring (keyrings FileKeyring) is malformed (it contains a line "
        "break)",
    )


def test_login_refuses_a_malformed_token_as_a_usage_error(tmp_path: Path) -> None:
    assert_one_error(
        run_ocm("login", "--no-verify", "http://127.0.0.1:9", "tok\x7fen"),
        2,
        "the token is malformed (it contains a control character)",
    )
    assert not config(tmp_path).exists()


def test_a_state_json_that_is_a_directory_is_named_everywhere(
    manager: RunningManager, tmp_path: Path
) -> None:
    state = config(tmp_path) / "state.json"
    state.mkdir(parents=True)
    (state / "something").write_text("x")
    assert_one_error(run_ocm("list"), 1, f"not logged in: {state} is a directory", f"rm -r {state}")
    assert_one_error(
        run_ocm("login", manager.url, input=manager.token + "\n"),
        1,
        f"cannot write {state}: it is a directory",
        f"rm -r {state}",
    )
    assert not (config(tmp_path) / "credentials.json").exists()  # nothing half-saved
    assert_one_error(run_ocm("logout"), 1, f"cannot write {state}: it is a directory")
    status = run_ocm("status")
    assert status.returncode == 0
    assert f"warning:   {state} is a directory, not ocm's state file" in status.stdout


@pytest.mark.parametrize("variable", ["OCM_CONFIG_DIR", "XDG_CONFIG_HOME"])
def test_a_config_dir_that_is_a_file_names_its_variable(
    variable: str, manager: RunningManager, tmp_path: Path
) -> None:
    """Not "remove it (`rm -r /dev/null/state.json`)", which cannot work: the variable that
    points at a file is what to change, and changing it as told works."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    where = a_file if variable == "OCM_CONFIG_DIR" else a_file / "opencode-manager"
    what = f"the config dir {where} is not a directory"
    if where != a_file:
        what = f"the config dir {where} cannot be made: {a_file} is not a directory"
    todo = f"set {variable} to a folder, or unset it"
    env = {variable: str(a_file)}
    login = run_ocm("login", manager.url, input=manager.token + "\n", env=env)
    assert assert_one_error(login, 1) == f"ocm: {what} (set by {variable}); {todo}"
    listed = run_ocm("list", env=env)
    assert assert_one_error(listed, 1) == f"ocm: not logged in: {what} (set by {variable}); {todo}"
    assert assert_one_error(run_ocm("logout", env=env), 1) == login.stderr.strip()
    status = run_ocm("status", env=env)
    assert status.returncode == 0
    assert f"warning:   {what} (set by {variable})\n" in status.stdout
    assert "rm -r" not in login.stderr + listed.stderr + status.stdout
    env[variable] = str(tmp_path / "folder")
    assert run_ocm("login", manager.url, input=manager.token + "\n", env=env).returncode == 0
    assert run_ocm("list", env=env).returncode == 0


def test_a_relative_config_dir_is_refused_and_a_relative_xdg_config_home_ignored(
    manager: RunningManager,
    add_repo: Callable[..., AddedRepo],
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    """OCM_CONFIG_DIR=rel would keep the token and state in whichever folder ocm runs in
    (inside a checkout, where a push would send them): refused, nothing written. A relative
    XDG_CONFIG_HOME is ignored, as the XDG spec says: ~/.config, as if unset."""
    work = tmp_path / "work"
    work.mkdir()
    env = {"OCM_CONFIG_DIR": "rel"}
    what = "OCM_CONFIG_DIR (rel) is a relative path, so ocm's token and state would be kept"
    todo = "; set OCM_CONFIG_DIR to an absolute path, or unset it"
    login = run_ocm("login", manager.url, cwd=work, input=manager.token + "\n", env=env)
    assert_one_error(login, 1, what, todo)
    assert_one_error(run_ocm("list", cwd=work, env=env), 1, f"not logged in: {what}", todo)
    status = run_ocm("status", cwd=work, env=env)
    assert status.returncode == 0 and f"warning:   {what}" in status.stdout
    assert list(work.iterdir()) == []
    # Nor is a credentials.json read there (one a checkout brought along, say) when the URL
    # comes from the environment; the environment's own token still works, and neither
    # remembering a repo nor logging out writes or removes anything there.
    planted = work / "rel" / "credentials.json"
    planted.parent.mkdir(mode=0o700)
    planted.write_text(json.dumps({"version": 1, "tokens": {manager.url: manager.token}}))
    planted.chmod(0o600)
    (work / "rel" / "state.json").write_text(json.dumps({"managerUrl": manager.url}))
    env["OPENCODE_MANAGER_URL"] = manager.url
    listed = run_ocm("list", cwd=work, env=env)
    assert_one_error(listed, 1, f"no token for {manager.url}: {what}", todo)
    env["OCM_TOKEN"] = manager.token
    add_repo("widget")
    assert run_ocm("use", "widget", cwd=work, env=env).returncode == 0
    assert recorder.called()
    assert run_ocm("logout", cwd=work, env=env).returncode == 0
    assert sorted(path.name for path in planted.parent.iterdir()) == [
        "credentials.json",
        "state.json",
    ]
    assert json.loads((work / "rel" / "state.json").read_text()) == {"managerUrl": manager.url}
    shutil.rmtree(planted.parent)

    env = {"XDG_CONFIG_HOME": "relcfg"}
    login = run_ocm("login", manager.url, cwd=work, input=manager.token + "\n", env=env)
    assert login.returncode == 0, login.stderr
    assert (tmp_path / "home" / ".config" / "opencode-manager" / "state.json").is_file()
    assert list(work.iterdir()) == []
    assert run_ocm("list", cwd=tmp_path, env=env).returncode == 0


def test_a_credentials_json_that_is_a_directory_is_named_and_login_recovers(
    manager: RunningManager, tmp_path: Path
) -> None:
    credentials = config(tmp_path) / "credentials.json"
    assert run_ocm("login", manager.url, input=manager.token + "\n").returncode == 0
    credentials.unlink()
    credentials.mkdir()  # mode 0755: the folder's mode is not what is wrong with it
    (credentials / "something").write_text("x")
    advice = f"remove it (`rm -r {credentials}`)"
    for command in ("list", "logout"):
        assert_one_error(run_ocm(command), 1, f"{credentials} is a directory", advice)
    assert_one_error(
        run_ocm("login", manager.url, input=manager.token + "\n"),
        1,
        f"{credentials} is a directory",
        advice,
    )
    status = run_ocm("status")
    assert status.returncode == 0
    assert f"{credentials} is a directory" in status.stdout
    # The advice, followed literally, works.
    subprocess.run(["rm", "-r", str(credentials)], check=True)
    assert run_ocm("login", manager.url, input=manager.token + "\n").returncode == 0
    assert run_ocm("list").returncode == 0


def test_an_unreadable_state_json_is_named(manager: RunningManager, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads any file: stand in with a file that is not UTF-8 text instead.
        state = config(tmp_path) / "state.json"
        state.parent.mkdir(parents=True)
        state.write_bytes(b"\xff\xfe{}")
        assert_one_error(run_ocm("list"), 1, f"not logged in: {state} is not UTF-8 text")
    else:
        state = config(tmp_path) / "state.json"
        state.parent.mkdir(parents=True)
        state.write_text("{}")
        state.chmod(0)
        assert_one_error(
            run_ocm("list"), 1, f"not logged in: {state} is not readable (permission denied)"
        )


def test_logout_with_nothing_stored_still_reminds_that_ocm_token_is_set(tmp_path: Path) -> None:
    result = run_ocm("logout", env={"OCM_TOKEN": "still-set"})
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "ocm: not logged in; nothing to remove",
        "ocm: OCM_TOKEN is still set in this environment; unset it too",
    ]
    assert "still-set" not in result.stderr


def test_when_the_manager_stops_status_and_list_say_it_plainly(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    add_repo("widget")
    assert run_ocm("use", "widget").returncode == 0
    up = run_ocm("status")
    assert "reachable: yes, OpenCode on the Manager is external" in up.stdout
    login.stop()
    status = run_ocm("status")
    assert status.returncode == 0
    assert (
        "reachable: NO, the Manager is not reachable (connection refused); an open TUI cannot "
        'work until it is back (OpenCode says "Creating a session failed")'
    ) in status.stdout
    # Its local facts are all still there.
    assert f"manager:   {login.url} (from state.json)" in status.stdout
    assert "last repo: #" in status.stdout and "widget" in status.stdout
    report = json.loads(run_ocm("status", "--json").stdout)
    assert report["managerHealth"]["reachable"] is False
    assert report["loggedIn"] is True
    assert_one_error(
        run_ocm("list"),
        1,
        f"cannot reach the Manager at {login.url} (connection refused)",
        "that the Manager is running",
    )
