"""The proxy's side of HTTP to OpenCode: a small HTTP/1.1 client, its pool, the disconnect
watcher, and the response parsing that the event-loop relay (``manager.proxy.loop``) shares.

Not requests: the proxy must control every header (requests adds ``Accept-Encoding``, a
``Session`` keeps a shared cookie jar). Not http.client either: its header parsing (the email
package) cost 0.3 ms of CPU per request, a third of the proxy's whole budget. What is left is
small: write the request in one ``sendall``, read a status line and headers, then hand out the
body as it arrives (``read1``: never wait for more than one read, so each Server-Sent Event
goes out at once) according to its framing — length, chunked, or until close.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from manager.opencode import Endpoint

CONNECT_TIMEOUT = 10.0
# How often the watcher looks for clients that have hung up (FIELD-NOTES: a disconnect is
# otherwise only seen at the next write, up to one heartbeat later).
WATCH_INTERVAL = 0.25
BLOCK = 64 * 1024
MAX_LINE = 65536
MAX_HEADERS = 200


class UpstreamError(Exception):
    """OpenCode closed the connection or broke HTTP; the exchange cannot go on."""


class ResponseHead:
    """The status, headers and body framing of one upstream response head, from ``rfile``."""

    def __init__(self, rfile: BinaryIO, method: str) -> None:
        status_line = rfile.readline(MAX_LINE)
        if not status_line:
            raise UpstreamError("connection closed before a response")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise UpstreamError(f"bad status line {status_line[:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        self.headers = _read_headers(rfile)
        # An interim answer (103 Early Hints) comes before the real one and is skipped.
        self.interim = 100 <= self.status < 200 and self.status != 101
        version = parts[0]
        names = {name.lower(): value for name, value in self.headers}
        connection = names.get("connection", "").lower()
        self.will_close = "close" in connection or (
            version == b"HTTP/1.0" and "keep-alive" not in connection
        )
        self.chunked = False
        self.remaining: int | None = None  # bytes left of a Content-Length body
        self.done = False
        if method == "HEAD" or self.status < 200 or self.status in (204, 304):
            self.remaining = 0
        elif names.get("transfer-encoding", "").lower().rstrip().endswith("chunked"):
            self.chunked = True
        elif "content-length" in names:
            try:
                self.remaining = int(names["content-length"].split(",")[0])
            except ValueError:
                raise UpstreamError("bad Content-Length") from None
        else:
            self.will_close = True  # the body ends when the connection does
        if self.remaining == 0:
            self.done = True


class Response(ResponseHead):
    """An upstream response whose body is read as it arrives, from a blocking connection,
    and decoded by the same ``BodyDecoder`` as the event-loop relay's."""

    def __init__(self, conn: Connection, method: str) -> None:
        self.conn = conn
        super().__init__(conn.rfile, method)
        while self.interim:
            super().__init__(conn.rfile, method)
        self.body = BodyDecoder(self)
        self.pending = bytearray()  # read from the connection, not yet decoded

    def read1(self, limit: int = BLOCK) -> bytes:
        """What has arrived of the body's content; b"" once it is complete.

        Reads the connection at most once per piece of content: a chunk is returned as soon
        as it arrives, before the CRLF after it. Raises UpstreamError when the connection
        ends before the body does.
        """
        body = self.body
        while True:
            content = body.feed(self.pending)
            if body.done:
                self.done = True
                # Bytes after the body would be read as the next answer's: do not reuse.
                self.will_close = self.will_close or bool(self.pending)
            if content or body.done:
                return content
            wanted = limit if body.chunked or body.remaining is None else body.remaining
            data = self.conn.rfile.read1(min(limit, wanted))
            if not data:
                if not body.until_close:
                    raise UpstreamError("body cut short")
                body.done = True
            self.pending += data


class BodyDecoder:
    """The content of an upstream body from its bytes as they arrive: by length, chunked
    (trailers dropped, as on the worker path) or until the connection closes."""

    def __init__(self, head: ResponseHead) -> None:
        self.chunked = head.chunked
        self.remaining = head.remaining
        self.done = head.done
        self.until_close = not head.chunked and head.remaining is None
        self.chunk_left = 0
        self.state = "size"  # chunked: size line, data, CRLF after data, trailer

    def feed(self, buffer: bytearray) -> bytes:
        """Take what ``buffer`` holds of the body out of it; return the content."""
        if self.done:
            return b""
        if not self.chunked:
            take = len(buffer) if self.remaining is None else min(len(buffer), self.remaining)
            content = bytes(buffer[:take])
            del buffer[:take]
            if self.remaining is not None:
                self.remaining -= take
                self.done = self.remaining == 0
            return content
        pieces = []
        while buffer and not self.done:
            if self.state == "data":
                take = min(len(buffer), self.chunk_left)
                pieces.append(bytes(buffer[:take]))
                del buffer[:take]
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.state = "end"
                continue
            line = _take_line(buffer)
            if line is None:
                break
            if self.state == "size":
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise UpstreamError("bad chunk size") from None
                if size < 0:
                    raise UpstreamError("bad chunk size")
                self.chunk_left = size
                self.state = "data" if size else "trailer"
            elif self.state == "end":
                if line.strip():
                    raise UpstreamError("bad chunk ending")
                self.state = "size"
            elif not line.strip():  # the empty line after the trailers
                self.done = True
        return b"".join(pieces)


def _take_line(buffer: bytearray) -> bytes | None:
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) > MAX_LINE:
            raise UpstreamError("line too long")
        return None
    line = bytes(buffer[: end + 1])
    del buffer[: end + 1]
    return line


def _read_headers(rfile: BinaryIO) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for _ in range(MAX_HEADERS):
        line = rfile.readline(MAX_LINE)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise UpstreamError("connection closed in the headers")
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise UpstreamError("bad header line")
        headers.append((name.strip(), value.strip()))
    raise UpstreamError("too many headers")


def request_head(
    method: str, target: str, headers: list[tuple[str, str]], length: int | None
) -> bytes:
    """The request line and headers; ``length`` is the body's, None for a request without one."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")  # WSGI strings are latin-1 by definition


class Connection:
    """One keep-alive connection to OpenCode."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.sock: socket.socket | None = None
        self.rfile: Any = None
        self.reused = False
        self.interrupted = False  # the watcher ended it: the client had gone

    def connect(self) -> None:
        if self.sock is not None:
            return
        sock = socket.create_connection(
            (self.endpoint.host, self.endpoint.port), timeout=CONNECT_TIMEOUT
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.endpoint.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname=self.endpoint.host
            )
        # An event stream is idle between heartbeats and a prompt may take minutes: no read
        # timeout; the watcher ends reads whose client has gone.
        sock.settimeout(None)
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=BLOCK)

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | BinaryIO | None,
        length: int,
    ) -> Response:
        self.connect()
        assert self.sock is not None
        head = request_head(method, target, headers, None if body is None else length)
        if body is None or isinstance(body, bytes):
            self.sock.sendall(head + body if body else head)
        else:
            self.sock.sendall(head)
            remaining = length
            while remaining > 0:
                block = body.read(min(BLOCK, remaining))
                if not block:
                    raise UpstreamError("request body shorter than its Content-Length")
                self.sock.sendall(block)
                remaining -= len(block)
        return Response(self, method)

    def shutdown(self) -> None:
        """Wake a thread blocked reading this connection (called from the watcher)."""
        self.interrupted = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        sock, rfile = self.sock, self.rfile
        self.sock = self.rfile = None
        if rfile is not None:
            with contextlib.suppress(OSError):
                rfile.close()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def looks_alive(self) -> bool:
        """An idle pooled connection is readable only if the server closed it (or misbehaved)."""
        sock = self.sock
        if sock is None:
            return False
        poller = select.poll()  # not select(): it fails on descriptors above 1023
        try:
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False


class Pool:
    """Idle keep-alive connections per endpoint, at most ``maxsize`` each (LIFO)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._idle: dict[Endpoint, list[Connection]] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: Endpoint) -> Connection:
        while True:
            with self._lock:
                idle = self._idle.get(endpoint)
                conn = idle.pop() if idle else None
            if conn is None:
                return Connection(endpoint)
            if conn.looks_alive():
                conn.reused = True
                return conn
            conn.close()

    def put(self, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(conn.endpoint, [])
            if len(idle) < self.maxsize:
                idle.append(conn)
                return
        conn.close()

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def clear(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def client_gone_probe(environ: dict[str, Any], half_close: bool = True) -> Callable[[], bool]:
    """A cheap "has the client hung up?" for the request in ``environ``.

    Waitress offers ``environ["waitress.client_disconnected"]``, but it only turns True when
    waitress reads from the connection while the request runs (``channel_request_lookahead``),
    and that costs about 0.4 ms of CPU on every request (measured: 0.48 -> 0.92 ms per
    request for a trivial app). Instead the watcher peeks at the client's socket, which the
    callable's channel holds: an orderly close reads as b"", a reset as an error.

    An orderly close may also be a client that only shut its sending side and waits for the
    answer (``half_close``): then only a reset counts, and a client that closed for good is
    noticed when its answer is written. An event stream's client never waits that way
    (``half_close=False``), and its stream's end must show in ``inUse`` at once.
    """
    check = environ.get("waitress.client_disconnected")
    if not callable(check):
        return lambda: False
    sock = getattr(getattr(check, "__self__", None), "socket", None)
    if not isinstance(sock, socket.socket):
        return check  # type: ignore[no-any-return]

    def gone() -> bool:
        if check():
            return True
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return data == b"" and not half_close

    return gone


class Interruptible(Protocol):
    def shutdown(self) -> None:
        """End the exchange's wait for OpenCode (called from the watcher's thread)."""


class DisconnectWatcher:
    """One thread that polls ``waitress.client_disconnected`` for every proxied request.

    When a client has gone, the upstream socket is shut down, which ends the blocked read in
    the worker thread (the worker then closes the connection and frees its thread), or the
    event loop's wait for a relayed answer (``manager.proxy.loop``).
    """

    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self.interval = interval
        self._watched: dict[int, tuple[Callable[[], bool], Interruptible]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._keys = itertools.count()

    def watch(self, gone: Callable[[], bool], conn: Interruptible) -> int:
        key = next(self._keys)
        with self._lock:
            self._watched[key] = (gone, conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="proxy-disconnects", daemon=True
                )
                self._thread.start()
        return key

    def unwatch(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def shutdown_all(self) -> None:
        with self._lock:
            entries = list(self._watched.values())
            self._watched.clear()
        for _, conn in entries:
            conn.shutdown()

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            with self._lock:
                entries = list(self._watched.items())
            for key, (gone, conn) in entries:
                try:
                    went = gone()
                except Exception:  # a finished request's channel: nothing to wake
                    went = False
                if went:
                    self.unwatch(key)
                    conn.shutdown()
