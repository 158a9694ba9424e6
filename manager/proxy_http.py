"""The proxy's side of HTTP to OpenCode: pooled connections and the disconnect watcher.

Plain ``http.client`` rather than requests: the proxy must control every header (requests adds
``Accept-Encoding``, a ``Session`` keeps a shared cookie jar) and must be able to shut a
connection's socket from another thread the moment the client behind it goes away.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import select
import socket
import threading
from collections.abc import Callable

from manager.opencode import Endpoint

CONNECT_TIMEOUT = 10.0
# How often the watcher asks waitress whether clients are still there (FIELD-NOTES: a
# disconnect is otherwise only seen at the next write, up to one heartbeat later).
WATCH_INTERVAL = 0.25


class Connection:
    """One keep-alive connection to OpenCode."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        cls = (http.client.HTTPSConnection if endpoint.scheme == "https"
               else http.client.HTTPConnection)
        self.http = cls(endpoint.host, endpoint.port, timeout=CONNECT_TIMEOUT)
        self.reused = False

    def connect(self) -> None:
        if self.http.sock is None:
            self.http.connect()
            sock: socket.socket = self.http.sock  # type: ignore[assignment]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # An event stream is idle between heartbeats and a prompt may take minutes:
            # no read timeout; the watcher ends reads whose client has gone.
            sock.settimeout(None)

    @property
    def sock(self) -> socket.socket | None:
        return self.http.sock  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        """Wake a thread blocked reading this connection (called from the watcher)."""
        sock = self.http.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.http.close()

    def looks_alive(self) -> bool:
        """An idle pooled connection is readable only if the server closed it (or misbehaved)."""
        sock = self.http.sock
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


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


class DisconnectWatcher:
    """One thread that polls ``waitress.client_disconnected`` for every proxied request.

    When a client has gone, the upstream socket is shut down, which ends the blocked read in
    the worker thread; the worker then closes the connection and frees its thread.
    """

    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self.interval = interval
        self._watched: dict[int, tuple[Callable[[], bool], Connection]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._keys = itertools.count()

    def watch(self, gone: Callable[[], bool], conn: Connection) -> int:
        key = next(self._keys)
        with self._lock:
            self._watched[key] = (gone, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="proxy-disconnects",
                                                daemon=True)
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
