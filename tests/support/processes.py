"""Real processes for tests: the Manager on 127.0.0.1 port 0, and the ocm CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.env import isolated_environ

LISTENING = re.compile(r"listening on (http://(?:127\.0\.0\.1|0\.0\.0\.0|\[::1\]):\d+)")


def manager_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "manager", *args]


def ocm_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ocm", *args]


def bound_by_file_modes(argv: list[str]) -> list[str]:
    """``argv`` run as a user whom file modes bind: as root, without the capabilities that
    read and write past them (what a developer's or a service's own account is)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]


def run_manager_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, bound: bool = False
) -> subprocess.CompletedProcess[str]:
    """``ocm-manager <args>``; ``bound``: as :func:`bound_by_file_modes` runs it."""
    argv = manager_command(*args)
    return subprocess.run(
        bound_by_file_modes(argv) if bound else argv,
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=120,
    )


def token_rotate_here(data_dir: Path) -> str:
    """``ocm-manager token rotate --data-dir <data_dir>``'s token, its own code run in this
    process: the suite starts hundreds of Managers, and a Python start for each token cost
    about 0.2 s of CPU. (Its tests run it as a command.)"""
    from manager.cli import main

    printed, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
        done = main(["token", "rotate", "--data-dir", str(data_dir)])
    assert done == 0, said.getvalue()
    return printed.getvalue().strip()


WEB_APP_LINE = re.compile(r"OpenCode's web app .*? on (http://127\.0\.0\.1:\d+)")


def held_opencode(path: Path, opencode_bin: str, go: Path) -> Path:
    """An ``opencode`` at ``path`` that starts the real one only once ``go`` exists: the
    Manager's OpenCode stays ``starting`` until then."""
    path.write_text(
        "#!/bin/sh\n"
        f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.2; done\n"
        f'exec {shlex.quote(opencode_bin)} "$@"\n'
    )
    path.chmod(0o755)
    return path


@dataclass
class RunningManager:
    """A Manager process started by a test; ``stop()`` is idempotent."""

    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def cli(
        self, *args: str, check: bool = True, bound: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ocm-manager <args> --data-dir <this manager's data dir>``."""
        return run_manager_cli(*args, "--data-dir", str(self.data_dir), check=check, bound=bound)

    def web_app_url(self) -> str:
        """Where the Manager says OpenCode's web app listens (its start-up line)."""
        match = WEB_APP_LINE.search(self.log())
        assert match, self.log()
        return match.group(1)

    def opencode_state(self) -> str:
        """OpenCode's state as ``/api/health`` reports it (``running``, ``starting``, ...)."""
        import requests

        health = requests.get(f"{self.url}/api/health", timeout=10).json()
        return str(health["opencode"]["state"])

    def wait_for_opencode(self, timeout: float = 120) -> None:
        """Until the Manager's OpenCode answers; a failure shows the Manager's log."""
        from tests.support.proctree import wait_until

        assert wait_until(lambda: self.opencode_state() == "running", timeout=timeout), self.log()


@dataclass
class Cli:
    """``ocm`` in a subprocess, pointed at ``manager`` by environment (no login needed)."""

    manager: RunningManager

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPENCODE_MANAGER_URL": self.manager.url,
            "OCM_TOKEN": self.manager.token,
        }

    def __call__(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(ocm_command(*args), cwd)

    def bound_by_file_modes(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """``ocm <args>`` as :func:`bound_by_file_modes` runs it."""
        return self._run(bound_by_file_modes(ocm_command(*args)), cwd)

    def _run(self, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=self.env(),
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self, cwd: Path, *args: str) -> subprocess.Popen[str]:
        """``ocm <args>`` in ``cwd`` without waiting for it; ``communicate()`` gives its
        output."""
        return subprocess.Popen(
            ocm_command(*args),
            cwd=cwd,
            env=self.env(),
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def repos(self, cwd: Path) -> list[dict]:
        done = self(cwd, "list", "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        return data["repos"] if isinstance(data, dict) else data


def as_from_a_terminal() -> None:
    """Hang-ups and Ctrl-C at their defaults, as for a Manager started by hand, whatever the
    test run inherited: under ``nohup`` or as a shell's background job they are ignored, and
    a Manager keeps ignoring what it was started ignoring (as ``nohup`` asks)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_manager(
    data_dir: Path,
    log_path: Path,
    *extra: str,
    token: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    preexec_fn: Callable[[], object] | None = None,
    bound: bool = False,
) -> RunningManager:
    """Start ``ocm-manager serve`` on port 0 and wait until it says where it listens
    (``bound``: as :func:`bound_by_file_modes` runs it).

    The token is made beforehand with ``token rotate`` (which prints it alone on stdout), so
    the test never needs to scrape it from the server's output.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if token is None and env is None:
        token = token_rotate_here(data_dir)
    elif token is None:
        token = run_manager_cli(
            "token", "rotate", "--data-dir", str(data_dir), env=env
        ).stdout.strip()
    args = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir), *extra]
    log_file = log_path.open("wb")
    argv = manager_command(*args)
    process = subprocess.Popen(
        bound_by_file_modes(argv) if bound else argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=preexec_fn or as_from_a_terminal,
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return RunningManager(match.group(1), token, data_dir, process, log_path, args)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"manager did not start:\n{log_path.read_text(errors='replace')}")


@contextlib.contextmanager
def opencode_manager(root: Path, opencode_bin: str, *extra: str) -> Iterator[RunningManager]:
    """A Manager running the real ``opencode serve``, its data, log and home under ``root`` (an
    environment of its own, so it may outlive one test); ready for OpenCode, stopped after."""
    running = start_manager(
        root / "data",
        root / "manager.log",
        "--opencode-bin",
        opencode_bin,
        *extra,
        env=isolated_environ(root / "home"),
    )
    try:
        running.wait_for_opencode()
        yield running
    finally:
        running.stop()
