"""The Manager's own ``opencode serve``: started, watched, restarted, and never left behind."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from manager import opencode
from tests.support import proctree
from tests.support.auth import basic, bearer
from tests.support.env import without_opencode
from tests.support.processes import RunningManager


def opencode_pid(manager: RunningManager) -> int | None:
    pids = [
        pid
        for pid in proctree.children(manager.process.pid)
        if "serve" in proctree.cmdline(pid) and proctree.alive(pid)
    ]
    assert len(pids) <= 1, pids
    return pids[0] if pids else None


def running_opencode(manager: RunningManager, other_than: int | None = None) -> int:
    """The pid of the opencode the Manager says is running (a new one after a restart)."""
    found: list[int] = []

    def ready() -> bool:
        pid = opencode_pid(manager)
        if pid is None or pid == other_than or manager.opencode_state() != "running":
            return False
        found.append(pid)
        return True

    assert proctree.wait_until(ready, timeout=120), manager.log()
    return found[-1]


def proxied_sessions(manager: RunningManager, directory: Path) -> requests.Response:
    return requests.get(
        f"{manager.url}/api/opencode-proxy/session",
        params={"directory": str(directory)},
        headers=bearer(manager.token),
        timeout=60,
    )


@pytest.mark.slow
def test_killed_opencode_is_restarted_and_stopping_the_manager_leaves_none(
    manager_factory, opencode_bin, isolated_env, tmp_path
):
    manager = manager_factory("--opencode-bin", opencode_bin)
    first = running_opencode(manager)
    argv = proctree.cmdline(first)
    env = proctree.environ(first)
    password = env["OPENCODE_SERVER_PASSWORD"]
    assert len(password) >= 32
    assert argv[1:4] == ["serve", "--hostname", "127.0.0.1"]
    assert password not in " ".join(argv)
    assert env["HOME"] == str(isolated_env)  # never the real home in tests
    assert proxied_sessions(manager, tmp_path).status_code == 200
    opencode_log = manager.data_dir / "logs" / "opencode.log"
    # A first start OpenCode itself gave up on ("Unexpected error") was restarted too.
    starts_before = opencode_log.read_text().count("starting opencode serve")

    proctree.kill_group_quietly(first)
    assert proctree.wait_until(lambda: not proctree.alive(first), timeout=10)
    second = running_opencode(manager, other_than=first)
    assert second != first
    assert proxied_sessions(manager, tmp_path).status_code == 200
    log = opencode_log.read_text()
    assert log.count("starting opencode serve") == starts_before + 1
    assert password not in log + manager.log()

    assert manager.stop() == 0
    assert not proctree.alive(second)
    assert not proctree.group_alive(second)


# Measured in the quick start (tests/e2e/test_quickstart.py): once a TUI had attached, the
# real OpenCode caught SIGTERM (SigCgt 0x173806cff) and was still serving 30 s after its
# Manager was SIGKILLed; an idle one dies of SIGTERM at once. This stand-in is that OpenCode
# at its worst, made certain: it takes SIGTERM and goes on, and it has started a process of
# its own (as OpenCode starts shells and language servers).
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "sig"),
    [("real", signal.SIGINT), ("real", signal.SIGKILL), ("deaf to SIGTERM", signal.SIGKILL)],
)
def test_no_opencode_outlives_the_manager(manager_factory, opencode_bin, tmp_path, kind, sig):
    binary = opencode_bin if kind == "real" else standin(tmp_path, DEAF_TO_SIGTERM)
    data_dir = tmp_path / "data"
    manager = manager_factory("--opencode-bin", binary, data_dir=data_dir)
    pid = running_opencode(manager)
    ended = False  # once its group is gone, its number may be reused: no kill by it then
    try:
        manager.process.send_signal(sig)
        manager.process.wait(timeout=30)
        # SIGKILL leaves the Manager no chance to clean up: the kernel's parent-death signal
        # does, and it must be one that OpenCode cannot take and go on.
        assert proctree.wait_until(lambda: not proctree.alive(pid), timeout=15)
        if kind == "real":
            assert proctree.wait_until(lambda: not proctree.group_alive(pid), timeout=15)
            ended = True
            return
        # What it started is left in its group, and the next Manager on this data dir ends
        # it before starting an OpenCode of its own.
        started = int((data_dir / "started.pid").read_text())
        assert proctree.alive(started)
        again = manager_factory("--opencode-bin", binary, data_dir=data_dir)
        assert proctree.wait_until(lambda: not proctree.group_alive(pid), timeout=30)
        ended = True
        assert not proctree.alive(started)
        assert "ending what the OpenCode of an earlier Manager left" in again.log()
        running_opencode(again)
    finally:
        if not ended:
            proctree.kill_group_quietly(pid)


def test_no_opencode_executable_means_503_and_says_how_to_fix_it(manager_factory, tmp_path):
    manager = manager_factory(env=without_opencode(tmp_path / "bin"))
    assert manager.opencode_state() == "unavailable"
    response = proxied_sessions(manager, tmp_path)
    assert response.status_code == 503
    assert response.json()["error"] == "opencode_not_configured"
    assert response.json()["opencode"] == "unavailable"  # what ocm's advice goes by
    assert "npm i -g opencode-ai" in response.json()["message"]


# -- the supervisor on its own, with stand-ins for opencode --------------------------------


def standin(tmp_path: Path, body: str) -> str:
    script = tmp_path / "opencode"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return str(script)


HEALTHY = """
    import base64, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    expected = "Basic " + base64.b64encode(
        ("opencode:" + os.environ["OPENCODE_SERVER_PASSWORD"]).encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == expected
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    print("stand-in serving", flush=True)
    HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
"""

# Catches SIGTERM and goes on (as OpenCode does once a TUI has attached), after starting a
# child of its own in its process group.
DEAF_TO_SIGTERM = (
    """
    import signal, subprocess
    signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM: going on", flush=True))
    child = subprocess.Popen(["sleep", "600"])
    with open("started.pid", "w") as out:
        out.write(str(child.pid))
"""
    + HEALTHY
)


def test_supervisor_restarts_with_backoff_and_logs_every_run(tmp_path):
    binary = standin(
        tmp_path,
        """
        import sys
        print("stand-in crashing", flush=True)
        sys.exit(3)
    """,
    )
    supervisor = opencode.Supervisor(binary, logs_dir=tmp_path, workdir=tmp_path)
    supervisor.start()
    try:
        assert proctree.wait_until(lambda: supervisor.restarts >= 2, timeout=20)
        assert supervisor.state in ("restarting", "starting")
        assert supervisor.wait_ready(0.1) is None
    finally:
        supervisor.stop()
    assert supervisor.state == "stopped"
    log = (tmp_path / "opencode.log").read_text()
    assert log.count("stand-in crashing") >= 2


def test_supervisor_waits_for_health_with_its_password(tmp_path):
    supervisor = opencode.Supervisor(
        standin(tmp_path, HEALTHY), logs_dir=tmp_path, workdir=tmp_path
    )
    supervisor.start()
    try:
        endpoint = supervisor.wait_ready(30)
        assert endpoint is not None and supervisor.state == "running"
        expected = basic(supervisor.password)["Authorization"]
        assert endpoint.authorization == expected
        assert opencode.check_health(endpoint)
    finally:
        supervisor.stop()
    assert supervisor.pid is None


def test_opencode_gets_a_port_where_no_outgoing_connection_can_land(tmp_path):
    # opencode binds seconds after the port is chosen: one from the ephemeral range can be
    # taken meanwhile by any connection the machine makes, and opencode then fails to start.
    low, _high = opencode.ephemeral_ports()
    supervisor = opencode.Supervisor(
        standin(tmp_path, HEALTHY), logs_dir=tmp_path, workdir=tmp_path
    )
    supervisor.start()
    try:
        endpoint = supervisor.wait_ready(30)
        assert endpoint is not None
        assert opencode.FIRST_LISTENING_PORT <= endpoint.port < low
    finally:
        supervisor.stop()


def test_stop_takes_down_a_child_that_ignores_sigterm_and_everything_it_started(tmp_path):
    marker = tmp_path / "grandchild.pid"
    binary = standin(
        tmp_path,
        f"""
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"])
        open({str(marker)!r}, "w").write(str(child.pid))
        time.sleep(600)
    """,
    )
    supervisor = opencode.Supervisor(binary, logs_dir=tmp_path, workdir=tmp_path)
    supervisor.start()
    assert proctree.wait_until(lambda: marker.exists() and marker.read_text(), timeout=20)
    pid = supervisor.pid
    grandchild = int(marker.read_text())
    assert pid is not None and proctree.alive(grandchild)
    supervisor.stop()  # SIGTERM is ignored: SIGKILL follows after the grace period
    assert not proctree.alive(pid)
    assert proctree.wait_until(lambda: not proctree.alive(grandchild), timeout=10)


@pytest.mark.slow
def test_an_opencode_that_stops_answering_is_ended_and_started_again(
    opencode_bin, isolated_env, tmp_path, monkeypatch, caplog
):
    """A stopped (or deadlocked) OpenCode never exits: without a watch, every TUI's request
    would wait on it until someone restarts the Manager."""
    monkeypatch.setattr(opencode, "WATCH_EVERY", 0.5)
    monkeypatch.setattr(opencode, "WATCH_TIMEOUT", 1.0)
    monkeypatch.setattr(opencode, "WATCH_MISSES", 2)
    caplog.set_level("WARNING", logger="manager.opencode")
    supervisor = opencode.Supervisor(opencode_bin, logs_dir=tmp_path, workdir=tmp_path)
    supervisor.start()
    try:
        assert supervisor.wait_ready(120) is not None
        hung = supervisor.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        assert proctree.wait_until(lambda: supervisor.restarts >= 1, timeout=60)
        endpoint = supervisor.wait_ready(120)
        assert endpoint is not None and opencode.check_health(endpoint)
        assert supervisor.pid not in (None, hung)
        assert not proctree.alive(hung)
        assert "has not answered its health check 2 times in a row" in caplog.text
    finally:
        supervisor.stop()
