"""The Manager core against a real `ocm-manager serve` process: auth, health, workspaces."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.auth import basic, bearer
from tests.support.git import git, make_repo
from tests.support.processes import manager_command, run_manager_cli, start_manager


def test_health_needs_no_token(manager):
    response = requests.get(f"{manager.url}/api/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["opencode"] == {"state": "disabled"}
    assert body["version"]


def test_health_shown_a_token_says_whether_it_is_the_current_one(manager):
    """`ocm status` sends its token here: a rotated one is named, not just "present"."""
    health = f"{manager.url}/api/health"
    for headers, said in (
        (bearer(manager.token), "accepted"),
        (basic(manager.token), "accepted"),
        (bearer("wrong"), "rejected"),
        ({"Authorization": "Token " + manager.token}, "rejected"),
    ):
        response = requests.get(health, headers=headers, timeout=10)
        assert response.status_code == 200  # health stays open: a wrong token is no error here
        assert response.json()["token"] == said, headers
    assert "token" not in requests.get(health, timeout=10).json()
    manager.cli("token", "rotate")
    assert requests.get(health, headers=bearer(manager.token), timeout=10).json()["token"] == (
        "rejected"
    )


def test_every_other_route_needs_the_token(manager):
    workspaces = f"{manager.url}/api/internal/opencode-workspaces"
    for headers in (
        {},
        bearer("wrong"),
        basic("wrong"),
        {"Authorization": "Basic !!"},
        {"Authorization": "Token " + manager.token},
    ):
        response = requests.get(workspaces, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert manager.token not in response.text
    # Unknown paths are not revealed to a caller without the token either.
    assert requests.get(f"{manager.url}/api/nothing-here", timeout=10).status_code == 401


def test_bearer_and_basic_with_any_username_are_accepted(manager):
    workspaces = f"{manager.url}/api/internal/opencode-workspaces"
    for headers in (
        bearer(manager.token),
        basic(manager.token),
        basic(manager.token, user="anyone"),
    ):
        response = requests.get(workspaces, headers=headers, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"workspaces": []}


def test_errors_are_json_never_html(manager):
    response = requests.get(
        f"{manager.url}/api/nothing-here", headers=bearer(manager.token), timeout=10
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "not_found"
    response = requests.delete(f"{manager.url}/api/health", timeout=10)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_token_rotate_invalidates_the_old_token_at_once(manager):
    workspaces = f"{manager.url}/api/internal/opencode-workspaces"
    assert requests.get(workspaces, headers=bearer(manager.token), timeout=10).ok
    result = manager.cli("token", "rotate")
    new_token = result.stdout.strip()
    assert new_token and new_token != manager.token
    assert "\n" not in new_token
    assert requests.get(workspaces, headers=bearer(manager.token), timeout=10).status_code == 401
    assert requests.get(workspaces, headers=bearer(new_token), timeout=10).status_code == 200


def test_repo_add_list_and_workspaces(manager, tmp_path):
    upstream = make_repo(
        tmp_path / "upstream", origin="git@github.com:Acme/Widget.git", branch="trunk"
    )
    result = manager.cli("repo", "add", str(upstream), "--name", "widget")
    assert "added repo" in result.stdout
    response = requests.get(
        f"{manager.url}/api/internal/opencode-workspaces", headers=bearer(manager.token), timeout=10
    )
    [workspace] = response.json()["workspaces"]
    assert workspace["name"] == "widget"
    assert workspace["branch"] == "trunk"
    assert workspace["cloneStatus"] == "ready"
    assert isinstance(workspace["repoId"], int)
    # Laptops cloned from the real upstream must match, so the source's origin is kept.
    assert workspace["originUrl"] == "git@github.com:Acme/Widget.git"
    directory = Path(workspace["directory"])
    assert directory == manager.data_dir / "repos" / "widget"
    assert (directory / "README.md").exists()
    assert git(directory, "remote", "get-url", "origin") == "git@github.com:Acme/Widget.git"

    listing = json.loads(manager.cli("repo", "list", "--json").stdout)
    assert [repo["name"] for repo in listing] == ["widget"]


def test_repo_add_with_branch_and_default_name(manager, tmp_path):
    upstream = make_repo(tmp_path / "gadget.git", branch="main")
    git(upstream, "checkout", "-q", "-b", "feature")
    git(upstream, "checkout", "-q", "main")
    manager.cli("repo", "add", str(upstream), "--branch", "feature")
    [repo] = json.loads(manager.cli("repo", "list", "--json").stdout)
    assert repo["name"] == "gadget"
    assert repo["branch"] == "feature"
    # A local source with no origin of its own is matched by its path.
    assert repo["originUrl"] == str(upstream.resolve())


def test_repo_list_lines_up_a_branch_in_any_script(manager, tmp_path):
    """A CJK branch takes two terminal columns a character: the columns after it line up."""
    for name, branch in (("latin", "main"), ("cjk", "機能")):
        manager.cli("repo", "add", str(make_repo(tmp_path / name, branch=branch)))
    lines = manager.cli("repo", "list").stdout.splitlines()
    data = manager.data_dir / "repos"
    assert lines == [
        f"  ID  NAME{' ' * 20} BRANCH           STATUS   FOLDER",
        f"   1  latin{' ' * 19} main             ready    {data / 'latin'}",
        f"   2  cjk{' ' * 21} 機能             ready    {data / 'cjk'}",
    ]


def test_repo_add_failures_leave_nothing_behind(manager, tmp_path):
    result = manager.cli("repo", "add", str(tmp_path / "missing"), "--name", "ghost", check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("ocm-manager: git clone failed")
    assert json.loads(manager.cli("repo", "list", "--json").stdout) == []
    assert not (manager.data_dir / "repos" / "ghost").exists()

    upstream = make_repo(tmp_path / "one")
    manager.cli("repo", "add", str(upstream), "--name", "one")
    again = manager.cli("repo", "add", str(upstream), "--name", "one", check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr

    bad = manager.cli("repo", "add", str(upstream), "--name", "../escape", check=False)
    assert bad.returncode == 1
    assert "invalid repo name" in bad.stderr
    assert not (manager.data_dir / "escape").exists()


def test_repo_remove_keeps_or_deletes_files(manager, tmp_path):
    upstream = make_repo(tmp_path / "upstream")
    manager.cli("repo", "add", str(upstream), "--name", "keep")
    manager.cli("repo", "add", str(upstream), "--name", "drop")
    manager.cli("repo", "remove", "keep")
    manager.cli("repo", "remove", "DROP", "--delete-files")  # case-insensitive name
    assert json.loads(manager.cli("repo", "list", "--json").stdout) == []
    assert (manager.data_dir / "repos" / "keep" / "README.md").exists()
    assert not (manager.data_dir / "repos" / "drop").exists()
    missing = manager.cli("repo", "remove", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("ocm-manager: no repo 'nope'")


def test_first_start_prints_the_token_once_and_never_logs_it(tmp_path):
    data_dir = tmp_path / "data"
    controller, terminal = pty.openpty()  # a person at a terminal
    process = subprocess.Popen(
        manager_command("serve", "--port", "0", "--data-dir", str(data_dir), "--no-opencode"),
        stdout=terminal,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    shown = b""
    try:
        while b"\n" not in shown.partition(b"token")[2]:
            shown += os.read(controller, 4096)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        os.close(controller)
    assert process.returncode == 0
    token = re.search(rb"(ocm_[A-Za-z0-9_-]+)", shown).group(1).decode()  # type: ignore[union-attr]
    assert token not in err
    for path in (data_dir / "logs").iterdir():
        assert token not in path.read_text()
    assert token not in (data_dir / "manager.db").read_bytes().decode("latin-1")

    second = start_manager(data_dir, tmp_path / "second.log", "--no-opencode", token=token)
    try:
        assert "created the Manager token" not in second.log()
        response = requests.get(
            f"{second.url}/api/internal/opencode-workspaces", headers=bearer(token), timeout=10
        )
        assert response.status_code == 200
    finally:
        assert second.stop() == 0


def test_first_start_without_a_terminal_prints_no_token(tmp_path):
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        manager_command("serve", "--port", "0", "--data-dir", str(data_dir), "--no-opencode"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "listening on" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
    output = "".join(lines) + rest
    assert "ocm_" not in output
    assert "token rotate" in (data_dir / "logs" / "manager.log").read_text()
    # The command it names, typed as shown, makes the token of THIS data dir (not the
    # default one: the Manager was started with --data-dir).
    advice = re.search(r"run `ocm-manager (token rotate[^`]*)`", output)
    assert advice, output
    run_manager_cli(*shlex.split(advice.group(1)))
    with contextlib.closing(sqlite3.connect(data_dir / "manager.db")) as db:
        made = db.execute("SELECT value FROM meta WHERE key = 'token_sha256'").fetchone()
    assert made is not None


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OCM_MANAGER_DATA_DIR", str(tmp_path / "from-env"))
    token = run_manager_cli("token", "rotate").stdout.strip()
    assert token
    assert (tmp_path / "from-env" / "manager.db").exists()


def test_a_first_token_does_not_speak_of_an_old_one(tmp_path):
    data_dir = str(tmp_path / "fresh")
    first = run_manager_cli("token", "rotate", "--data-dir", data_dir)
    assert first.stderr == "ocm-manager: token made\n"
    second = run_manager_cli("token", "rotate", "--data-dir", data_dir)
    assert second.stderr == "ocm-manager: new token made; the old one stops working now\n"
    assert first.stdout != second.stdout


def test_port_in_use_is_one_clear_line(manager, tmp_path):
    port = manager.url.rsplit(":", 1)[1]
    # A data dir of its own: on the running Manager's, serve would stop at its lock.
    result = subprocess.run(
        manager_command(
            "serve", "--port", port, "--data-dir", str(tmp_path / "other"), "--no-opencode"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:" + port in result.stderr
    assert "Traceback" not in result.stderr


def test_an_address_this_machine_lacks_blames_host(tmp_path):
    # 192.0.2.1 is reserved for documentation: no machine has it, and binding sends nothing.
    result = subprocess.run(
        manager_command(
            "serve",
            "--host",
            "192.0.2.1",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--no-opencode",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot listen on 192.0.2.1 (--host): " in result.stderr
    assert "127.0.0.1: this machine only" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_the_manager_extra_says_how_to_install_it(tmp_path):
    # A laptop install has the ocm-manager script but not Flask: hide Flask from the import
    # system, as such an install would.
    hide_flask = (
        "import sys\n"
        "class NoFlask:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'flask':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoFlask())\n"
        "from manager.cli import main\n"
        f"sys.exit(main(['serve', '--port', '0', '--data-dir', {str(tmp_path / 'd')!r},"
        " '--no-opencode']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_flask], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "dependencies are not installed (flask is missing)" in line
    assert "python3 -m install --manager" in line


def test_a_manager_started_under_nohup_survives_a_closed_terminal(tmp_path):
    # As `nohup ocm-manager serve &` (scripts/quickstart): SIGHUP is ignored on purpose.
    manager = start_manager(
        tmp_path / "data",
        tmp_path / "nohup.log",
        "--no-opencode",
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    try:
        manager.process.send_signal(signal.SIGHUP)
        response = requests.get(f"{manager.url}/api/health", timeout=10)
        assert response.status_code == 200
        assert manager.process.poll() is None
    finally:
        assert manager.stop() == 0


def test_sighup_stops_a_manager_in_a_terminal_cleanly(manager):
    manager.process.send_signal(signal.SIGHUP)
    assert manager.process.wait(timeout=20) == 0


def test_repo_list_into_a_reader_that_leaves_early_is_quiet(manager, tmp_path):
    upstream = make_repo(tmp_path / "upstream")
    for index in range(3):
        manager.cli("repo", "add", str(upstream), "--name", f"r{index}")
    listing = subprocess.Popen(
        manager_command("repo", "list", "--json", "--data-dir", str(manager.data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    listing.stdout.close()  # type: ignore[union-attr]  # the reader is gone before a byte
    _, err = listing.communicate(timeout=60)
    assert b"unexpected error" not in err
    assert b"Traceback" not in err
