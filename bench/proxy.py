"""The Manager's OpenCode proxy next to OpenCode itself, side by side in one run.

Starts a real Manager (``ocm-manager serve --opencode-bin ...``) with a temp data dir and a
temp HOME, reads the address and password of the ``opencode serve`` it started (from /proc:
Linux only), then sends the same requests straight to OpenCode and through the proxy:

- latency, one client, keep-alive: ``GET /session?directory=D``, p50 and p99;
- throughput, four client processes, keep-alive, for a fixed time each;
- event delay: one event stream straight to OpenCode and one through the proxy, both open at
  once; ``POST /session`` triggers ``session.created``; the time from the POST until each
  stream sees the event;
- streams held: 200 event streams through the proxy at once (the default --max-streams),
  while ordinary requests keep being answered;
- a calibration: straight to OpenCode again, with a pause (--pause, ms) before each request
  about as long as the proxy's own delay, because OpenCode answers more slowly the longer it
  was idle; that much of the proxy's p50 is OpenCode's reaction, not the proxy's work.

Measuring starts once OpenCode has settled: after it starts, and again after the first
requests for the benchmark's directory, which set it working for about ten seconds.

When ``nginx`` is installed (``apt-get install nginx-light``), the latency and throughput runs
also go through an nginx reverse proxy in front of the same OpenCode, as the reference the
goals were set against (nginx: +0.2 ms p50, -3 % throughput on the machine they were set on).

    python bench/proxy.py [--opencode PATH] [--nginx PATH|--no-nginx] [--requests N]
                          [--seconds S] [--streams N]

Goals (issue 3): p50 added <= 1 ms, throughput >= 90 % of direct, event delay added <= 5 ms,
200 streams held. Rounds alternate between the sides so drift hits all alike.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import http.client
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Manager is started the way the tests start it

from tests.support.processes import RunningManager, start_manager  # noqa: E402

PY = sys.executable


@dataclass(frozen=True)
class Side:
    name: str
    host: str
    port: int
    prefix: str
    authorization: str
    pause: float = 0.0  # seconds the client waits, untimed, before each request

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}


# -- set-up --------------------------------------------------------------------------------


def find_opencode(explicit: str | None) -> str:
    for candidate in (explicit, os.environ.get("OCM_TEST_OPENCODE"), shutil.which("opencode")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("bench/proxy.py: no opencode found; pass --opencode PATH or run scripts/test once")


def start_opencode_manager(work: Path, opencode: str) -> RunningManager:
    """A real Manager with its own OpenCode (as the tests start it), once OpenCode runs.

    A temp HOME, so the fresh OpenCode's plugin install and config stay out of yours.
    """
    home = work / "home"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local/state"),
    )
    manager = start_manager(
        work / "data", work / "manager.log", "--opencode-bin", opencode, env=env, timeout=180
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if http_json(manager.url + "/api/health")["opencode"]["state"] == "running":
            return manager
        if manager.process.poll() is not None:
            break
        time.sleep(0.2)
    manager.stop()
    sys.exit("bench/proxy.py: the Manager's OpenCode did not start:\n" + manager.log())


def http_json(url: str) -> dict:  # type: ignore[type-arg]
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/" + url.split("//", 1)[1].split("/", 1)[1])
    return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    upstream opencode {{ server 127.0.0.1:{port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://opencode;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "{authorization}";
            proxy_buffering off;
        }}
    }}
}}
"""


def find_nginx(explicit: str | None, disabled: bool) -> str | None:
    if disabled:
        return None
    found = explicit or shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.access(found, os.X_OK) else None


@contextlib.contextmanager
def nginx_side(nginx: str, work: Path, direct: Side) -> Iterator[Side]:
    """nginx as a reverse proxy in front of the same OpenCode (it adds OpenCode's password)."""
    work.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        listen = probe.getsockname()[1]
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            work=work, port=direct.port, listen=listen, authorization=direct.authorization
        )
    )
    process = subprocess.Popen(
        [nginx, "-p", str(work), "-e", str(work / "nginx-error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen)):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (work / "nginx-error.log").read_text()
                sys.exit(f"bench/proxy.py: nginx did not start:\n{log}")
            time.sleep(0.05)
        yield Side("nginx", "127.0.0.1", listen, "", "")
    finally:
        process.terminate()
        process.wait(timeout=10)


def opencode_side(manager_pid: int) -> tuple[Side, int]:
    """OpenCode's own address and password, and its pid."""
    for task in Path(f"/proc/{manager_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"serve" in argv:
                port = int(argv[argv.index(b"--port") + 1])
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                password = next(
                    e.split(b"=", 1)[1].decode()
                    for e in environ
                    if e.startswith(b"OPENCODE_SERVER_PASSWORD=")
                )
                auth = base64.b64encode(f"opencode:{password}".encode()).decode()
                return Side("direct", "127.0.0.1", port, "", "Basic " + auth), int(pid)
    sys.exit("bench/proxy.py: could not find the Manager's opencode process")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, what: str, limit: float = 90.0) -> None:
    """Wait until OpenCode has stopped working in the background: a fresh ``opencode serve``
    installs its plugins, and the first requests for a directory start about ten seconds of
    work on that project. Measuring during either would measure that work, and it takes
    CPU from whichever side happens to be running."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.05:
            waited = time.monotonic() - start
            print(f"opencode settled {what} after {waited:.0f} s", file=sys.stderr)
            return
    print(f"opencode still busy {limit:.0f} s {what}; measuring anyway", file=sys.stderr)


# -- measurements --------------------------------------------------------------------------


def timed_requests(side: Side, target: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection(side.host, side.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = side.headers()
    times = []
    for _ in range(count):
        if side.pause:
            time.sleep(side.pause)
        start = time.perf_counter()
        conn.request("GET", side.prefix + target, headers=headers)
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200, response.status
    conn.close()
    return times


def _throughput_worker(
    side: Side, target: str, seconds: float, start_at: float, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection(side.host, side.port, timeout=30)
    headers = side.headers()
    while time.time() < start_at:
        time.sleep(0.001)
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("GET", side.prefix + target, headers=headers)
        response = conn.getresponse()
        response.read()
        done += 1
    out.put(done)


def throughput(side: Side, target: str, clients: int, seconds: float) -> float:
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 0.5
    workers = [
        multiprocessing.Process(
            target=_throughput_worker, args=(side, target, seconds, start_at, queue)
        )
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    total = sum(queue.get(timeout=seconds + 60) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


class StreamReader(threading.Thread):
    """Reads one event stream and timestamps every ``session.created`` by session id."""

    def __init__(self, side: Side, target: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection((side.host, side.port))
        request = (
            f"GET {side.prefix}{target} HTTP/1.1\r\nHost: {side.host}\r\n"
            f"Authorization: {side.authorization}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.seen: dict[str, float] = {}
        self.connected = threading.Event()
        self.buffer = b""

    def run(self) -> None:
        pattern = re.compile(rb'"type":"session\.created","properties":\{"sessionID":"([^"]+)"')
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            now = time.perf_counter()
            if not data:
                return
            self.buffer += data
            if b"server.connected" in self.buffer:
                self.connected.set()
            for match in pattern.finditer(self.buffer):
                self.seen.setdefault(match.group(1).decode(), now)
            self.buffer = self.buffer[-4096:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def event_delays(
    direct: Side, proxy: Side, directory: str, count: int
) -> tuple[list[float], list[float]]:
    target = f"/event?directory={quote(directory, safe='')}"
    readers = [StreamReader(direct, target), StreamReader(proxy, target)]
    for reader in readers:
        reader.start()
        assert reader.connected.wait(30), "no server.connected"
    conn = http.client.HTTPConnection(direct.host, direct.port, timeout=30)
    delays: tuple[list[float], list[float]] = ([], [])
    for _ in range(count):
        sent = time.perf_counter()
        conn.request(
            "POST",
            f"/session?directory={quote(directory, safe='')}",
            body=b"{}",
            headers={"Authorization": direct.authorization, "Content-Type": "application/json"},
        )
        session_id = json.loads(conn.getresponse().read())["id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(session_id in r.seen for r in readers):
            time.sleep(0.0005)
        for reader, out in zip(readers, delays, strict=True):
            out.append(reader.seen[session_id] - sent)
        time.sleep(0.02)
    for reader in readers:
        reader.close()
    time.sleep(1)  # the proxy notices the hang-up within its watch interval
    return delays


def hold_streams(
    proxy: Side, direct: Side, directory: str, count: int
) -> tuple[int, dict[str, list[float]]]:
    """Open ``count`` event streams through the proxy; while all are open, time ordinary
    requests both ways. Returns how many streams were held and those timings."""
    target = f"/global/event?directory={quote(directory, safe='')}"
    streams = []
    held = 0
    try:
        for _ in range(count):
            sock = socket.create_connection((proxy.host, proxy.port), timeout=30)
            sock.sendall(
                (
                    f"GET {proxy.prefix}{target} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {proxy.authorization}\r\n\r\n"
                ).encode()
            )
            streams.append(sock)
        refused = b""
        for sock in streams:
            data = b""
            while b"server.connected" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 200"):
                    refused = data
                    break
            held += b"server.connected" in data
        if refused:
            print(f"a stream was refused: {refused[:300]!r}", file=sys.stderr)
        target = f"/session?directory={quote(directory, safe='')}"
        timings: dict[str, list[float]] = {"direct": [], "proxy": []}
        for _ in range(4):
            for side in (direct, proxy):
                timings[side.name] += timed_requests(side, target, 100)
    finally:
        for sock in streams:
            sock.close()
    return held, timings


# -- report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opencode")
    parser.add_argument("--nginx", help="the nginx to compare with (default: from PATH)")
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--requests", type=int, default=2000, help="per side, latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="per side, throughput")
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument(
        "--pause", type=float, default=0.5, help="ms, the paused direct side's pause"
    )
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("bench/proxy.py: reads /proc to find OpenCode's password; Linux only")

    opencode = find_opencode(args.opencode)
    nginx = find_nginx(args.nginx, args.no_nginx)
    work = Path(tempfile.mkdtemp(prefix="ocm-bench-proxy-"))
    manager = start_opencode_manager(work, opencode)
    process, url, token = manager.process, manager.url, manager.token
    try:
        with contextlib.ExitStack() as stack:
            directory = make_repo(work / "repo")
            direct, opencode_pid = opencode_side(process.pid)
            wait_until_idle(opencode_pid, "after starting")
            port = int(url.rsplit(":", 1)[1])
            proxy = Side("proxy", "127.0.0.1", port, "/api/opencode-proxy", f"Bearer {token}")
            sides = [direct, proxy]
            if nginx:
                sides.append(stack.enter_context(nginx_side(nginx, work / "nginx", direct)))
            target = f"/session?directory={quote(directory, safe='')}"
            # Warm every path (OpenCode builds its per-directory state on the first call).
            for side in sides * 3:
                timed_requests(side, target, 300)
            wait_until_idle(opencode_pid, "after the first requests for the directory")

            # OpenCode answers more slowly the longer it was idle before a request. This side
            # pauses before each request about as long as the proxy adds (against a trivial
            # upstream), to show how much of the proxy's p50 is OpenCode reacting to that.
            paused = dataclasses.replace(direct, name="direct, paused", pause=args.pause / 1000)
            latency_sides = [*sides, paused]
            latency: dict[str, list[float]] = {side.name: [] for side in latency_sides}
            # Short rounds, so that the neighbours' bursts on a shared machine fall on every
            # side alike rather than on whichever happened to be running.
            rounds = max(8, args.requests // 50)
            manager_cpu = 0.0
            for _ in range(rounds):
                for side in latency_sides:
                    before = cpu_seconds(process.pid)
                    latency[side.name] += timed_requests(side, target, args.requests // rounds)
                    if side is proxy:
                        manager_cpu += cpu_seconds(process.pid) - before
            rate: dict[str, list[float]] = {side.name: [] for side in sides}
            for _ in range(3):
                for side in sides:
                    rate[side.name].append(throughput(side, target, 4, args.seconds / 3))
        delay_direct, delay_proxy = event_delays(direct, proxy, directory, args.events)
        held, while_held = hold_streams(proxy, direct, directory, args.streams)
    finally:
        manager.stop(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    names = [side.name for side in sides]
    # On a shared machine p50 can land in a slow mode of OpenCode's; p10 shows the cost itself.
    quantiles = {q: {name: pct(latency[name], q) for name in names} for q in (0.5, 0.1, 0.99)}
    rps = {name: statistics.mean(rate[name]) for name in names}
    rows = []
    for q, label, goal in ((0.5, "p50", "<= +1 ms"), (0.1, "p10", ""), (0.99, "p99", "")):
        values = quantiles[q]
        rows.append(
            (
                f"GET /session {label}, 1 client",
                *(ms(values[name]) for name in names),
                *(f"+{ms(values[name] - values['direct'])}" for name in names[1:]),
                goal,
            )
        )
    rows.append(
        (
            "throughput, 4 clients",
            *(f"{rps[name]:.0f}/s" for name in names),
            *(f"{100 * rps[name] / rps['direct']:.0f} %" for name in names[1:]),
            ">= 90 %",
        )
    )
    blank = [""] * (len(names) - 1)
    ev = {"direct": statistics.median(delay_direct), "proxy": statistics.median(delay_proxy)}
    added = [p - d for p, d in zip(delay_proxy, delay_direct, strict=True)]
    rows += [
        (
            "event delay p50 (POST -> event)",
            ms(ev["direct"]),
            ms(ev["proxy"]),
            *blank[1:],
            f"+{ms(statistics.median(added))}",
            *blank[1:],
            "<= +5 ms",
        ),
        ("event delay added, p90", "", "", *blank[1:], f"+{ms(pct(added, 0.9))}", *blank),
        (
            "Manager CPU per proxied request",
            "",
            ms(manager_cpu / len(latency["proxy"])),
            *blank[1:],
            *blank,
            "",
        ),
        (
            f"streams held at once (of {args.streams})",
            "",
            str(held),
            *blank[1:],
            *blank,
            f"{args.streams}",
        ),
        (
            "GET /session p50 while they are held",
            ms(statistics.median(while_held["direct"])),
            ms(statistics.median(while_held["proxy"])),
            *blank[1:],
            "+"
            + ms(statistics.median(while_held["proxy"]) - statistics.median(while_held["direct"])),
            *blank[1:],
            "",
        ),
    ]
    header = ("measure", *names, *(f"{name} added" for name in names[1:]), "goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    paused_p50, paused_p10 = (pct(latency[paused.name], q) for q in (0.5, 0.1))
    print(
        f"\nStraight to OpenCode with a {args.pause:g} ms pause before each request:"
        f" p50 {ms(paused_p50)} (+{ms(paused_p50 - quantiles[0.5]['direct'])}),"
        f" p10 {ms(paused_p10)} (+{ms(paused_p10 - quantiles[0.1]['direct'])})."
    )
    print(
        f"\n{os.cpu_count()} CPUs; {args.requests} requests per side for latency;"
        f" {args.seconds:.0f} s per side for throughput; {args.events} events"
        + ("" if nginx else "; no nginx found (apt-get install nginx-light) to compare with")
        + "."
    )
    return 0


def make_repo(path: Path) -> str:
    """A git repo, as a TUI would attach to: OpenCode keys its state by project."""
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty"]
        + ["-m", "bench"],
        cwd=path,
        check=True,
    )
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
