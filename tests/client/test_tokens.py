"""The token stores (SPEC §2): keyring when a real one exists, else credentials.json (0600 in a
0700 dir), OCM_TOKEN over both, OPENCODE_MANAGER_URL + OCM_TOKEN with nothing on disk."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyring.backends import chainer, fail, null

from ocm import credentials
from ocm.cli import main
from tests.client.conftest import REPO_ROOT, AddedRepo, Recorder, assert_one_error, config, run_ocm
from tests.client.keyrings import BrokenKeyring, FileKeyring, MemoryKeyring
from tests.support.processes import RunningManager, as_from_a_terminal, ocm_command
from tests.support.terminal import read_until_closed

SERVICE = "opencode-manager"


@pytest.fixture
def use_keyring() -> Iterator[Callable[[object], None]]:
    """Install a keyring backend in this process; the previous one comes back afterwards."""
    previous = keyring.core._keyring_backend  # noqa: SLF001 - restoring, not reading

    def install(backend: object) -> None:
        keyring.set_keyring(backend)  # type: ignore[arg-type]

    yield install
    keyring.core._keyring_backend = previous  # noqa: SLF001


def status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_real_keyring_holds_the_token_and_no_file_is_written(
    manager: RunningManager,
    use_keyring: Callable[[object], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    memory = MemoryKeyring()
    use_keyring(memory)
    assert main(["login", manager.url + "/", manager.token]) == 0
    err = capsys.readouterr().err
    assert "token saved in the OS keyring (keyrings MemoryKeyring)" in err
    assert memory.items == {(SERVICE, manager.url): manager.token}
    assert not (config(tmp_path) / "credentials.json").exists()
    report = status_json(capsys)
    assert report["token"] == {
        "present": True,
        "store": "keyring",
        "location": "the OS keyring (keyrings MemoryKeyring)",
        "accepted": True,
    }
    assert main(["list"]) == 0
    assert main(["logout"]) == 0
    assert "token removed from the OS keyring (keyrings MemoryKeyring)" in capsys.readouterr().err
    assert memory.items == {}
    assert not (config(tmp_path) / "state.json").exists()


def test_no_real_keyring_means_a_0600_file_in_a_0700_dir(
    manager: RunningManager, tmp_path: Path
) -> None:
    result = run_ocm("login", manager.url, input=f"{manager.token}\n")
    assert result.returncode == 0, result.stderr
    path = config(tmp_path) / "credentials.json"
    assert f"token saved in {path} (mode 0600; no system keyring is available)" in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"version": 1, "tokens": {manager.url: manager.token}}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    status = run_ocm("status")
    assert f"token:     present, from {path}" in status.stdout
    listed = run_ocm("list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    "backend",
    [fail.Keyring(), null.Keyring(), chainer.ChainerBackend()],
    ids=["fail", "null", "chainer-with-nothing"],
)
def test_backends_that_keep_nothing_safely_are_not_used(
    backend: object,
    manager: RunningManager,
    use_keyring: Callable[[object], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The chainer would pick up the test backends defined in this process; hide them.
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    use_keyring(backend)
    assert credentials.real_keyring() is None
    assert main(["login", manager.url, manager.token]) == 0
    assert "no system keyring is available" in capsys.readouterr().err
    assert (config(tmp_path) / "credentials.json").exists()


def test_insecure_storage_forces_the_file_and_clears_the_keyring(
    manager: RunningManager,
    use_keyring: Callable[[object], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    memory = MemoryKeyring()
    use_keyring(memory)
    assert main(["login", manager.url, manager.token]) == 0
    assert memory.items
    assert main(["login", "--insecure-storage", manager.url, manager.token]) == 0
    assert "(mode 0600; --insecure-storage was given)" in capsys.readouterr().err
    assert memory.items == {}
    assert status_json(capsys)["token"]["store"] == "file"  # type: ignore[index]
    # ...and back: a keyring login removes the file's copy, so one store holds the token.
    assert main(["login", manager.url, manager.token]) == 0
    assert not (config(tmp_path) / "credentials.json").exists()
    assert status_json(capsys)["token"]["store"] == "keyring"  # type: ignore[index]


def test_a_failing_keyring_degrades_to_the_file(
    manager: RunningManager,
    use_keyring: Callable[[object], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_keyring(BrokenKeyring())
    assert main(["login", manager.url, manager.token]) == 0
    assert "the system keyring failed (KeyringError)" in capsys.readouterr().err
    assert (config(tmp_path) / "credentials.json").exists()
    assert main(["list"]) == 0
    assert main(["logout"]) == 0
    assert not (config(tmp_path) / "credentials.json").exists()


def test_keyring_backend_in_a_subprocess(manager: RunningManager, file_keyring: Path) -> None:
    store = file_keyring
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    assert json.loads(store.read_text()) == {f"{SERVICE}|{manager.url}": manager.token}
    assert "from the OS keyring (keyrings FileKeyring)" in run_ocm("status").stdout
    assert run_ocm("list").returncode == 0


def test_later_commands_load_the_backend_login_used_without_keyrings_discovery(
    manager: RunningManager,
    file_keyring: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    state = json.loads((config(tmp_path) / "state.json").read_text())
    assert state["keyringBackend"] == "tests.client.keyrings.FileKeyring"
    # Without keyring's override its discovery would import every backend (and find no
    # real one on a test machine): the token is read from the backend login named, alone.
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    discoveries: list[str] = []
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # nothing chosen yet
    monkeypatch.setattr(keyring.core, "init_backend", lambda *a: discoveries.append("init"))
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: discoveries.append("all"))
    assert main(["list"]) == 0
    assert status_json(capsys)["token"] == {
        "present": True,
        "store": "keyring",
        "location": "the OS keyring (keyrings FileKeyring)",
        "accepted": True,
    }
    assert main(["logout"]) == 0
    assert "token removed from the OS keyring (keyrings FileKeyring)" in capsys.readouterr().err
    assert json.loads(file_keyring.read_text()) == {}
    assert discoveries == []


def test_behind_a_chainer_login_records_the_member_that_took_the_token(
    manager: RunningManager,
    file_keyring: Path,
    use_keyring: Callable[[object], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # keyring chains its backends when more than one is viable (Secret Service and KWallet).
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [FileKeyring(), MemoryKeyring()])
    use_keyring(chainer.ChainerBackend())
    assert main(["login", manager.url, manager.token]) == 0
    state = json.loads((config(tmp_path) / "state.json").read_text())
    assert state["keyringBackend"] == "tests.client.keyrings.FileKeyring"
    assert json.loads(file_keyring.read_text()) == {f"{SERVICE}|{manager.url}": manager.token}


def _keyrings_choice_is_the_file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """keyring left to itself (no override in the environment) picks FileKeyring, through its
    own config file: the store ``ocm login`` really used, as when a user configured it."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    keyring_config = tmp_path / "home" / ".config" / "python_keyring"
    keyring_config.mkdir(parents=True)
    (keyring_config / "keyringrc.cfg").write_text(
        "[backend]\ndefault-keyring = tests.client.keyrings.FileKeyring\n"
    )


def _edit_state(tmp_path: Path, **changes: object) -> Path:
    state_file = config(tmp_path) / "state.json"
    state = json.loads(state_file.read_text())
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    state_file.write_text(json.dumps(state))
    return state_file


def test_a_token_the_pinned_backend_lost_is_looked_for_in_keyrings_choice(
    manager: RunningManager, file_keyring: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    # A backend that is empty in every process.
    _edit_state(tmp_path, keyringBackend="tests.client.keyrings.MemoryKeyring")
    _keyrings_choice_is_the_file_keyring(tmp_path, monkeypatch)
    assert "from the OS keyring (keyrings FileKeyring)" in run_ocm("status").stdout
    assert run_ocm("list").returncode == 0


def test_a_login_from_before_the_record_gets_it_when_a_repo_is_next_remembered(
    manager: RunningManager,
    file_keyring: Path,
    add_repo: Callable[..., AddedRepo],
    recorder: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_repo("app")
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    state_file = _edit_state(tmp_path, keyringBackend=None)  # as an older ocm wrote it
    _keyrings_choice_is_the_file_keyring(tmp_path, monkeypatch)
    used = run_ocm("use", "app")
    assert used.returncode == 0, used.stderr
    state = json.loads(state_file.read_text())
    assert state["lastRepoName"] == "app"
    assert state["keyringBackend"] == "tests.client.keyrings.FileKeyring"


def test_ocm_token_overrides_the_stores_and_names_itself(
    manager: RunningManager, tmp_path: Path
) -> None:
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    env = {"OCM_TOKEN": "not-the-token"}
    status = run_ocm("status", env=env)
    assert status.returncode == 0
    assert (
        f"token:     present, from the OCM_TOKEN environment variable, but {manager.url} rejects "
        "it (rotated, or another Manager's); set OCM_TOKEN to the Manager's current token, or "
        "unset it to use the one `ocm login` saved\n"
    ) in status.stdout
    line = assert_one_error(
        run_ocm("list", env=env),
        1,
        f"token from the OCM_TOKEN environment variable rejected by {manager.url}",
        "set OCM_TOKEN to the Manager's current token, or unset it",
    )
    # Logging in again would not help while the variable wins: the advice does not say so.
    assert "run `ocm login" not in line
    assert run_ocm("list", env={"OCM_TOKEN": manager.token}).returncode == 0


def test_env_url_and_token_work_with_nothing_on_disk(
    manager: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    repo = add_repo("ci")
    env = {"OPENCODE_MANAGER_URL": manager.url, "OCM_TOKEN": manager.token}
    listed = run_ocm("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "ci" in listed.stdout
    assert not config(tmp_path).exists()
    status = json.loads(run_ocm("status", "--json", env=env).stdout)
    assert status["managerUrlSource"] == "OPENCODE_MANAGER_URL" and status["loggedIn"]
    used = run_ocm("use", "ci", env=env)
    assert used.returncode == 0, used.stderr
    assert recorder.read()["env"]["OPENCODE_SERVER_PASSWORD"] == manager.token
    assert recorder.read()["argv"][4] == repo.directory


def test_a_rotated_token_is_named_by_status_and_rejected_naming_the_store(
    manager: RunningManager, tmp_path: Path
) -> None:
    """After `token rotate` (the quick start's, say) a laptop's TUI fails with OpenCode's
    "Creating a session failed"; `ocm status`, where the README's troubleshooting sends the
    user, said "reachable: yes" and "token: present" as if all were well."""
    assert run_ocm("login", manager.url, input=manager.token).returncode == 0
    stored = config(tmp_path) / "credentials.json"
    before = run_ocm("status")
    assert f"token:     present, from {stored}; the Manager accepts it\n" in before.stdout
    assert json.loads(run_ocm("status", "--json").stdout)["token"]["accepted"] is True
    manager.cli("token", "rotate")
    after = run_ocm("status")
    assert after.returncode == 0
    assert (
        f"token:     present, from {stored}, but {manager.url} rejects it (rotated, or another "
        f"Manager's); run `ocm login {manager.url}` with a current token\n"
    ) in after.stdout
    assert json.loads(run_ocm("status", "--json").stdout)["token"]["accepted"] is False
    assert_one_error(
        run_ocm("list"),
        1,
        f"token from {stored} rejected by {manager.url}",
        f"run `ocm login {manager.url}`",
    )
    assert manager.token not in manager.log()  # the token status showed it, now rejected


def test_logout_says_when_nothing_was_stored(tmp_path: Path) -> None:
    result = run_ocm("logout")
    assert result.returncode == 0
    assert "not logged in; nothing to remove" in result.stderr
    done = run_ocm("logout", env={"OPENCODE_MANAGER_URL": "http://127.0.0.1:9"})
    assert "logged out of http://127.0.0.1:9; no token was stored for it" in done.stderr


def test_logout_of_another_manager_named_by_the_environment_keeps_the_login(
    login: RunningManager, tmp_path: Path
) -> None:
    other = "http://127.0.0.1:9"
    done = run_ocm("logout", env={"OPENCODE_MANAGER_URL": other})
    assert done.returncode == 0, done.stderr
    assert f"logged out of {other}; no token was stored for it" in done.stderr
    assert f"still logged in to {login.url} (from state.json)" in done.stderr
    # The login that state.json and credentials.json hold still works.
    assert json.loads((config(tmp_path) / "state.json").read_text())["managerUrl"] == login.url
    listed = run_ocm("list")
    assert listed.returncode == 0, listed.stderr


def _login_at_a_prompt(manager: RunningManager) -> tuple[subprocess.Popen[bytes], int, bytes]:
    """``ocm login <url>`` on a pseudo-terminal, once it shows the token prompt: the process,
    the terminal's controller, and what it showed so far."""
    controller, terminal = os.openpty()
    # A new session has no controlling terminal, so getpass uses the pty on stdin, not the
    # terminal this test may run in.
    proc = subprocess.Popen(
        ocm_command("login", manager.url),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,  # Ctrl-C at its default, whatever this run inherited
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 30
    while b"input hidden" not in seen and time.monotonic() < deadline:
        seen += os.read(controller, 1024)
    return proc, controller, seen


def test_login_asks_for_the_token_with_a_hidden_prompt_on_a_terminal(
    manager: RunningManager, tmp_path: Path
) -> None:
    proc, controller, seen = _login_at_a_prompt(manager)
    os.write(controller, manager.token.encode() + b"\n")
    assert proc.wait(timeout=30) == 0
    seen += read_until_closed(controller)
    text = seen.decode(errors="replace")
    assert "Manager token (input hidden):" in text
    assert manager.token not in text  # not echoed
    assert "logged in to" in text
    saved = json.loads((config(tmp_path) / "credentials.json").read_text())
    assert saved["tokens"] == {manager.url: manager.token}


@pytest.mark.parametrize(
    ("cut", "code", "said"),
    [("ctrl-c", 130, "ocm: interrupted"), ("ctrl-d", 2, "ocm: no token given")],
)
def test_a_token_prompt_cut_short_ends_its_line(
    manager: RunningManager, tmp_path: Path, cut: str, code: int, said: str
) -> None:
    proc, controller, seen = _login_at_a_prompt(manager)
    if cut == "ctrl-c":
        proc.send_signal(signal.SIGINT)  # what the terminal sends for Ctrl-C
    else:
        os.write(controller, b"\x04")  # Ctrl-D: the input ends
    assert proc.wait(timeout=30) == code
    lines = (seen + read_until_closed(controller)).decode(errors="replace").splitlines()
    assert any(line.startswith(said) for line in lines)  # a line of its own, not the prompt's
    assert not any("unexpected" in line for line in lines)
    assert not (config(tmp_path) / "credentials.json").exists()
