"""``scripts/quickstart`` as a new user runs it, in tmux, in a fresh HOME: the real installer,
the real Manager with the real OpenCode, the real TUI left with Ctrl-C. Then again with
nothing to do, then after the Manager died leaving a stale pid file, then ``--stop``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.install.conftest import CHECKOUT
from tests.install.test_full_install import NPM_ENV
from tests.support import proctree

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DONE = "QUICKSTART-EXIT="
# Terminal control sequences, stripped from the logged output shown in a failure.
ANSI = re.compile(
    r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMc])"
)


def quiet_port() -> int:
    """A port for the quick start's Manager, which binds it and the next one (its OpenCode web
    app) minutes after the choice, once the install is done: one below the kernel's ephemeral
    range, which no port-0 listener or outgoing connection of a parallel test can take meanwhile
    (a port 0 hands out can be anyone's by then). Free now, with the next one."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    below = range(max(1024, low // 2), low - 1)  # not the ports only root may bind
    for port in random.sample(below, min(200, len(below))):
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError(f"no two free ports in a row below {low}")


class Terminal:
    """One tmux server of the test's own, running commands the way a user's shell would.

    A pane whose shell ends stays on the server (``remain-on-exit``) with its last screen,
    and everything a run writes to its terminal is also logged to a file, so that a run that
    ends early, or a server that is gone, still leaves a failure that says what happened."""

    def __init__(self, socket_path: Path, env: dict[str, str]) -> None:
        self.socket = socket_path
        self.env = env
        self.runs = 0
        self.config = socket_path.with_name("tmux.conf")
        self.config.write_text("set-option -g remain-on-exit on\n")

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", str(self.config), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    def screen(self, session: str) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", session)

    def output_log(self, session: str) -> Path:
        return self.socket.with_name(f"{session}.out")

    def status_file(self, session: str) -> Path:
        return self.socket.with_name(f"{session}.status")

    def start(self, command: str) -> str:
        self.runs += 1
        session = f"run{self.runs}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        status = shlex.quote(str(self.status_file(session)))
        line = (
            f"env -i {exports} bash -c {shlex.quote(command)}; status=$?; "
            f"echo $status >{status}; echo {DONE}$status; sleep 600"
        )
        # pipe-pane runs in the same command queue as new-session, before the server reads
        # the pane's first output: the log misses nothing.
        log = shlex.quote(str(self.output_log(session)))
        self.tmux(
            "new-session", "-d", "-s", session, "-x", "200", "-y", "50", line,
            ";", "pipe-pane", "-t", session, f"cat >>{log}",
        )  # fmt: skip
        return session

    def pane(self, session: str, format_: str) -> str:
        return self.tmux("display-message", "-p", "-t", session, format_).strip()

    def post_mortem(self, session: str) -> str:
        """What is known of a run: its pane (how its shell ended), its last screen, the
        quick start's exit code and the tail of all it wrote to the terminal."""
        parts: list[str] = []
        try:
            screen = re.sub(r"\n{3,}", "\n\n", self.screen(session).rstrip())
            pane = self.pane(
                session,
                "pid #{pane_pid}, dead #{pane_dead}, exit status #{pane_dead_status},"
                " signal #{pane_dead_signal}",
            )
            parts += [f"tmux pane of {session}: {pane}", f"last screen:\n{screen}"]
        except subprocess.CalledProcessError as exc:
            parts.append(f"tmux has no pane {session} any more: {exc.stderr.strip()}")
            try:
                parts.append(f"tmux sessions left: {self.tmux('list-sessions').strip()!r}")
            except subprocess.CalledProcessError as gone:
                parts.append(f"tmux server: {gone.stderr.strip()}")
        status = self.status_file(session)
        parts.append(
            f"quick start exit code: {status.read_text().strip()}"
            if status.exists()
            else "quick start exit code: none written (the shell around it ended first)"
        )
        with contextlib.suppress(FileNotFoundError):
            text = ANSI.sub("", self.output_log(session).read_text(errors="replace"))
            parts.append(f"terminal output, last 4000 characters:\n{text[-4000:]}")
        return "\n".join(parts)

    def wait_for(self, session: str, found: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                screen = self.screen(session)
                if found(screen):
                    return screen
                ended = self.pane(session, "#{pane_dead}") == "1"
            except subprocess.CalledProcessError:
                ended = True
            if ended:
                raise AssertionError(
                    f"the shell in tmux session {session} ended\n{self.post_mortem(session)}"
                )
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s\n{self.post_mortem(session)}")

    def quickstart(self, repo: Path, timeout: float) -> tuple[str, float]:
        """Run the quick start until the TUI shows the repo, leave with Ctrl-C; its output
        and the seconds it took to get to the TUI."""
        began = time.monotonic()
        session = self.start(f"{CHECKOUT}/scripts/quickstart {shlex.quote(str(repo))}")
        screen = self.wait_for(
            session,
            lambda s: f"repos/{repo.name}:main" in s or DONE in s,
            timeout,
        )
        to_tui = time.monotonic() - began
        if DONE in screen:
            # It ended before the TUI: a Ctrl-C now would reach the shell's `sleep` and end
            # the pane, and with it the output that says why.
            return screen, to_tui
        self.tmux("send-keys", "-t", session, "C-c")
        screen = self.wait_for(session, lambda s: DONE in s, 60)
        return screen, to_tui


def test_quickstart_first_run_rerun_stale_pid_and_stop(
    git_repo: Callable[..., Path], opencode_bin: str, isolated_env: Path, tmp_path: Path
) -> None:
    assert shutil.which("tmux"), "tmux is part of the test set-up (scripts/test installs it)"
    repo = git_repo("project", branch="main")
    port = quiet_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(("HOME", "XDG_", "GIT_", "PYTHON_KEYRING", "LANG", "TMPDIR"))
    }
    env.update(NPM_ENV)
    env.update(
        {
            # A shell whose PATH lacks ~/.local/bin, as on many first days.
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TERM": "xterm-256color",
            "OCM_QUICKSTART_PORT": str(port),
            "OCM_OPENCODE_BIN": opencode_bin,
        }
    )
    # The first run's OpenCode takes longer to start than the Manager's proxy waits (30 s) for
    # a TUI's first request, as a first start on a busy machine can: the quick start waits.
    slow = tmp_path / "slow-opencode"
    slow.write_text(f'#!/bin/sh\n[ "$1" = serve ] && sleep 40\nexec {opencode_bin} "$@"\n')
    slow.chmod(0o755)
    env["OCM_OPENCODE_BIN"] = str(slow)
    term = Terminal(tmp_path / "tmux.sock", env)
    data_dir = isolated_env / ".local" / "share"
    credentials = isolated_env / ".config" / "opencode-manager" / "credentials.json"
    orphans: list[int] = []
    try:
        first, first_secs = term.quickstart(repo, timeout=1500)
        assert f"{DONE}0" in first, first
        assert "ocm: logged in to" in first and "1 repo ready" in first
        assert "0 repos ready" not in first
        assert "making a new one with `ocm-manager token rotate`" in first
        # How to leave, come back and stop; and the PATH line this shell needs.
        assert "leave it with Ctrl-C" in first
        assert f"come back to this TUI later with `ocm` in {repo}" in first
        assert 'export PATH="$HOME/.local/bin:$PATH"' in first
        assert f"stop it with: {CHECKOUT}/scripts/quickstart --stop" in first
        assert "waiting for OpenCode on the Manager to start (starting)" in first
        token_before = credentials.read_text()
        term.env["OCM_OPENCODE_BIN"] = opencode_bin

        # Nothing to do: no pip, no npm, the same Manager, the same token.
        second, second_secs = term.quickstart(repo, timeout=300)
        assert f"{DONE}0" in second, second
        assert "nothing to do (pip skipped)" in second
        assert "installing" not in second.lower()
        assert re.search(r"the Manager started by an earlier quick start \(pid \d+\)", second)
        assert "already (token from" in second and "keeping it" in second
        assert "token rotate" not in second
        assert credentials.read_text() == token_before

        # The Manager died and its pid file stayed: a new Manager, the same token.
        pid_files = list(data_dir.rglob("quickstart.pid"))
        assert len(pid_files) == 1
        pid_file = pid_files[0]
        killed = int(pid_file.read_text())
        # Its OpenCode, to which TUIs attached, catches SIGTERM by now and went on serving
        # long after a SIGTERM parent-death signal: the kernel's SIGKILL ends it with the
        # Manager. (The test ends its group in any case, so that a failure leaves nothing.)
        orphans.extend(proctree.children(killed))
        assert orphans, "the Manager started by the quick start runs no OpenCode"
        os.kill(killed, signal.SIGKILL)
        assert proctree.wait_until(
            lambda: not any(proctree.alive(pid) for pid in orphans), timeout=15
        ), orphans
        # What they started goes now, while their group ids are still theirs: pids here are
        # used up in minutes, and a later kill by a number could end another test's group.
        for pgid in orphans:
            proctree.kill_group_quietly(pgid)
        orphans.clear()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _answers(port):
            time.sleep(0.2)
        stale = subprocess.Popen(["sleep", "600"])  # the old pid, now someone else's
        pid_file.write_text(f"{stale.pid}\n")
        try:
            third, _ = term.quickstart(repo, timeout=300)
        finally:
            stale.kill()
            stale.wait()
        assert f"{DONE}0" in third, third
        assert f"removing the stale pid file {pid_file}" in third
        assert "starting the Manager" in third
        assert "keeping it" in third and "token rotate" not in third
        assert credentials.read_text() == token_before

        stop = term.start(f"{CHECKOUT}/scripts/quickstart --stop")
        stopped = term.wait_for(stop, lambda s: DONE in s, 120)
        assert f"{DONE}0" in stopped and "quickstart: stopped" in stopped
        assert not pid_file.exists() and not _answers(port)
        print(f"quick start to the TUI: first {first_secs:.1f} s, re-run {second_secs:.1f} s")
        print(json.dumps({"first": first_secs, "rerun": second_secs}))
    finally:
        subprocess.run(["tmux", "-S", str(term.socket), "kill-server"], capture_output=True)
        for pgid in orphans:
            proctree.kill_group_quietly(pgid)
        for pid_file in data_dir.rglob("quickstart.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                pid = int(pid_file.read_text())
                if "serve" in proctree.cmdline(pid):  # still the Manager, not a reused pid
                    os.kill(pid, signal.SIGTERM)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
