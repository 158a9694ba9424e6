"""The OpenCode server behind the proxy (SPEC §4): our own supervised child, or an external one.

``Upstream`` is all the proxy needs: where to connect, which Basic credentials to add, and a
``state`` for ``/api/health``. ``Supervisor`` is an ``Upstream`` that runs ``opencode serve``
itself: on 127.0.0.1 at a free port, with a random password passed in the environment (never
on the command line, where every local user can read it), restarted with backoff when it dies,
and stopped with its whole process group when the Manager exits — however it exits.

However: a Manager that is killed outright (SIGKILL, the OOM killer) cannot stop anything.
The kernel then kills OpenCode itself (a parent-death signal, SIGKILL: a SIGTERM is not
enough, since OpenCode, once a TUI has attached, catches it and may take its time or never
exit), and what OpenCode started in its process group (shells, language servers) is left;
the next Manager on the same data dir ends that group before it starts its own OpenCode
(``reap_leftover_group``), recognising it by a mark in its members' environment.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import ctypes.util
import http.client
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ocm.opencode import own_copy, pinned_spec

log = logging.getLogger("manager.opencode")

USERNAME = "opencode"
HEALTH_PATH = "/global/health"
# A connection accepted while opencode is still booting can hang forever: poll with a short
# timeout per attempt, and give a first start (which may install its plugins) a long budget.
HEALTH_ATTEMPT_TIMEOUT = 2.0
STARTUP_TIMEOUT = 180.0
STOP_GRACE = 5.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A run this long counts as healthy: the next crash starts the backoff from the beginning.
STABLE_AFTER = 60.0
# A running OpenCode that stops answering (stopped, deadlocked, its event loop stuck) keeps
# every TUI's request waiting and never exits, so nothing restarts it: it is asked for its
# (cheap) health this often, each time allowing WATCH_TIMEOUT, and ended, and so started
# again, after this many misses in a row: no answer for more than half a minute.
WATCH_EVERY = 15.0
WATCH_TIMEOUT = 5.0
WATCH_MISSES = 3
LOG_ROTATE_BYTES = 20 * 1024**2
# In OpenCode's environment (and so in that of everything it starts): the mark of the
# process group recorded in ``GROUP_FILE``, which the next Manager ends if it is left.
GROUP_MARK = "OCM_MANAGER_OPENCODE_GROUP"
GROUP_FILE = "opencode.group"

# States shown by /api/health.
DISABLED = "disabled"  # --no-opencode
UNAVAILABLE = "unavailable"  # no opencode executable found
STARTING = "starting"
RUNNING = "running"
RESTARTING = "restarting"
EXTERNAL = "external"  # --opencode-url
STOPPED = "stopped"


@dataclass(frozen=True)
class Endpoint:
    """Where the proxy sends a request, and the credentials it adds."""

    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/prefix" of an external server mounted below a path
    authorization: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_path}"


def basic_authorization(password: str, username: str = USERNAME) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def endpoint_for(url: str, password: str) -> Endpoint:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Endpoint(
        parts.scheme, parts.hostname, port, parts.path.rstrip("/"), basic_authorization(password)
    )


class Upstream:
    """An OpenCode server the Manager does not run (``--opencode-url``)."""

    def __init__(self, endpoint: Endpoint | None, state: str) -> None:
        self._endpoint = endpoint
        self.state = state

    @property
    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    @property
    def configured(self) -> bool:
        """False when no OpenCode can ever answer (proxy: 503 rather than 502)."""
        return self.state not in (DISABLED, UNAVAILABLE)

    def wait_ready(self, timeout: float) -> Endpoint | None:
        return self._endpoint

    def describe(self) -> str:
        if self.state == UNAVAILABLE:
            return (
                "OpenCode is not installed on the Manager; install it"
                f" (`python3 -m install --manager`, or `npm i -g {pinned_spec()}`)"
                " or start the Manager with --opencode-bin or --opencode-url"
            )
        if self.state == DISABLED:
            return "the Manager runs without OpenCode (--no-opencode)"
        return f"OpenCode at {self._endpoint.url if self._endpoint else '?'}"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


# Where the kernel takes the local ports of outgoing connections (Linux's default; read from
# /proc where there is one).
EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_PORTS = (32768, 60999)
FIRST_LISTENING_PORT = 10000


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, below the kernel's range for outgoing connections.

    opencode binds its port some seconds after we choose it. A port from the ephemeral range
    (what binding port 0 gives) can meanwhile become the local end of any outgoing connection
    on the machine, and opencode then exits with a bare "ServeError"; below the range only
    another listener can take it.
    """
    low = ephemeral_ports()[0]
    if low > FIRST_LISTENING_PORT:
        for _ in range(50):
            port = secrets.randbelow(low - FIRST_LISTENING_PORT) + FIRST_LISTENING_PORT
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = (int(word) for word in EPHEMERAL_PORTS_FILE.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_PORTS
    return low, high


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_health(endpoint: Endpoint, timeout: float = HEALTH_ATTEMPT_TIMEOUT) -> bool:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
    try:
        conn.request(
            "GET",
            endpoint.base_path + HEALTH_PATH,
            headers={"Authorization": endpoint.authorization},
        )
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def death_signal_setup(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn that makes Linux send ``sig`` to the child when the Manager dies, even by
    SIGKILL.

    SIGKILL, not SIGTERM: measured in the quick start, an OpenCode that a TUI had attached to
    caught the SIGTERM and was still running 30 s after its Manager was killed (FIELD-NOTES:
    ~10 s after a prompt). A Manager that stops normally still asks with SIGTERM first
    (``Supervisor.stop``); a dead one has nobody left to wait for OpenCode's grace.
    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so children are only started
    from the supervisor's own thread, which lives as long as the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def setup() -> None:
        prctl(pr_set_pdeathsig, sig, 0, 0, 0)
        if os.getppid() != parent:  # the Manager died before prctl took effect
            os._exit(1)

    return setup


def kill_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stat_fields(pid: int | str) -> list[str]:
    """State, parent, group... of a live process from /proc (Linux); [] when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    fields = stat.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 2 and fields[0] != "Z" else []


def group_members(pgid: int) -> list[int]:
    """The live processes in process group ``pgid`` (Linux /proc; empty elsewhere)."""
    members: list[int] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _stat_fields(entry.name)[2:3] == [str(pgid)]:
                members.append(int(entry.name))
    return members


def _marked(pid: int, mark: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{GROUP_MARK}={mark}".encode() in environ.split(b"\0")


def reap_leftover_group(group_file: Path) -> None:
    """End what an OpenCode of an earlier Manager on this data dir left in its group.

    A group id can be reused once the group is gone, so the group is ended only when one
    of its members still carries the mark recorded with it; and only when OpenCode itself
    (the group's leader) is gone: a live one has a live Manager (the parent-death signal),
    which may be another one on this data dir."""
    try:
        pgid_text, _, mark = group_file.read_text().strip().partition(" ")
        pgid = int(pgid_text)
    except (OSError, ValueError):
        return
    if pgid <= 1 or not mark or _stat_fields(pgid):
        return
    if any(_marked(pid, mark) for pid in group_members(pgid)):
        log.warning("ending what the OpenCode of an earlier Manager left running (group %d)", pgid)
        kill_group(pgid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        group_file.unlink()


class Supervisor(Upstream):
    """Runs ``opencode serve`` and keeps it running until ``stop()``."""

    def __init__(
        self,
        binary: str,
        *,
        logs_dir: Path,
        workdir: Path,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        self.binary = binary
        self.password = password or secrets.token_urlsafe(32)
        self.log_path = logs_dir / "opencode.log"
        self.group_file = logs_dir / GROUP_FILE
        self.workdir = workdir
        self._port = port or free_port()
        super().__init__(None, STARTING)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0
        self.running_since: float | None = None  # time.time() of the last healthy start

    # -- what the proxy and /api/health see ---------------------------------------------------

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def wait_ready(self, timeout: float) -> Endpoint | None:
        """The endpoint once opencode answers; None if it does not within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self.state != RUNNING and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._endpoint if self.state == RUNNING else None

    def describe(self) -> str:
        return f"the Manager's OpenCode server ({self.state})"

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        atexit.register(self.stop)
        self._thread = threading.Thread(target=self._run, name="opencode-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop opencode and everything it started; safe to call twice and from atexit."""
        self._stopping.set()
        with self._ready:
            process = self._process
            self._set_state(STOPPED)
        if process is not None:
            self._terminate(process)

    def _set_state(self, state: str, endpoint: Endpoint | None = None) -> None:
        # Caller holds self._lock (via self._ready).
        if state == RUNNING and self.state != RUNNING:
            self.running_since = time.time()
        self.state = state
        self._endpoint = endpoint
        self._ready.notify_all()

    def _run(self) -> None:
        reap_leftover_group(self.group_file)
        setup = death_signal_setup()
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            started = time.monotonic()
            process = self._spawn(setup)
            if process is None:
                return
            endpoint = Endpoint(
                "http", "127.0.0.1", self._port, "", basic_authorization(self.password)
            )
            if self._await_health(process, endpoint):
                with self._ready:
                    if self._stopping.is_set():
                        break
                    self._set_state(RUNNING, endpoint)
                log.info("opencode is running at %s (pid %d)", endpoint.url, process.pid)
                self._watch(process, endpoint)
            if self._stopping.is_set():
                break
            self._terminate(process)  # also takes down whatever it left in its group
            code = process.returncode
            ran = time.monotonic() - started
            if ran >= STABLE_AFTER:
                backoff = BACKOFF_FIRST
            delay, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
            log.warning(
                "opencode stopped (exit code %s after %.0f s); restarting in %.0f s; see %s",
                code,
                ran,
                delay,
                self.log_path,
            )
            with self._ready:
                if self._stopping.is_set():
                    break
                self._set_state(RESTARTING)
            self.restarts += 1
            self._stopping.wait(delay)

    def _watch(self, process: subprocess.Popen[bytes], endpoint: Endpoint) -> None:
        """Until OpenCode exits, the Manager stops, or OpenCode stops answering."""
        misses, next_ask = 0, time.monotonic() + WATCH_EVERY
        while process.poll() is None and not self._stopping.wait(0.5):
            if time.monotonic() < next_ask:
                continue
            misses = 0 if check_health(endpoint, WATCH_TIMEOUT) else misses + 1
            next_ask = time.monotonic() + WATCH_EVERY
            if misses >= WATCH_MISSES and process.poll() is None:
                log.warning(
                    "opencode (pid %d) has not answered its health check %d times in a row, "
                    "%.0f s apart; ending it to start it again",
                    process.pid,
                    misses,
                    WATCH_EVERY,
                )
                return

    def _spawn(self, setup: Callable[[], None] | None) -> subprocess.Popen[bytes] | None:
        if not port_is_free(self._port):
            self._port = free_port()
        env = dict(os.environ)
        env["OPENCODE_SERVER_PASSWORD"] = self.password
        mark = secrets.token_hex(16)
        env[GROUP_MARK] = mark
        env.pop("OPENCODE_SERVER_USERNAME", None)
        argv = [self.binary, "serve", "--hostname", "127.0.0.1", "--port", str(self._port)]
        self._rotate_log()
        with self._ready:
            if self._stopping.is_set():
                return None
            with self.log_path.open("ab") as out:
                out.write(
                    f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting opencode serve"
                    f" on 127.0.0.1:{self._port}\n".encode()
                )
                out.flush()
                self._process = subprocess.Popen(
                    argv,
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=setup,
                )
            # start_new_session: its pid is its group's id.
            self.group_file.write_text(f"{self._process.pid} {mark}\n")
            return self._process

    def _await_health(self, process: subprocess.Popen[bytes], endpoint: Endpoint) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                return False
            if check_health(endpoint):
                return True
            self._stopping.wait(0.2)
        if not self._stopping.is_set():
            log.warning("opencode did not answer within %.0f s", STARTUP_TIMEOUT)
        return False

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        # start_new_session made the child a group leader: its pid is the group id, and the
        # group outlives the leader for as long as anything it started still runs.
        pgid = process.pid
        kill_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            kill_group(pgid, signal.SIGKILL)
            process.wait(timeout=STOP_GRACE)
        kill_group(pgid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.group_file.unlink()

    def _rotate_log(self) -> None:
        try:
            if self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        except FileNotFoundError:
            pass


def find_binary(configured: str | None) -> str | None:
    """``--opencode-bin``, else ``opencode`` on PATH, else the pinned copy the installer put
    in this environment (the same order as the client's, SPEC §2)."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return shutil.which(configured)
    own = own_copy()
    return shutil.which("opencode") or (str(own) if os.access(own, os.X_OK) else None)


def upstream_for(
    *,
    mode: str,
    binary: str | None,
    url: str | None,
    password: str | None,
    logs_dir: Path,
    workdir: Path,
) -> Upstream | None:
    """The upstream the settings ask for, not started yet; None for ``--no-opencode``."""
    if mode == "none":
        return None
    if mode == "external":
        if not url or not password:
            raise ValueError("an external OpenCode server needs a URL and a password")
        return Upstream(endpoint_for(url, password), EXTERNAL)
    found = find_binary(binary)
    if found is None:
        log.warning(
            "no opencode executable found (%s); the proxy answers 503",
            binary or "none on PATH, and no installed copy",
        )
        return Upstream(None, UNAVAILABLE)
    return Supervisor(found, logs_dir=logs_dir, workdir=workdir)
