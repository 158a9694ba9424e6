"""A TCP relay on 127.0.0.1 that counts the bytes each way and can shape them like a slow link.

Put it between a client and a server (the client connects to ``relay.port``, the relay
connects on to the server) and every payload byte is counted: ``up`` is client to server,
``down`` server to client. TCP/IP headers are not counted; HTTP headers are.

Unshaped, it forwards with ``splice(2)`` (socket -> pipe -> socket in the kernel), so on
loopback it costs little CPU next to what it measures. Shaped, each direction is a link of
its own: bytes leave the relay no faster than ``rate`` and each one arrives ``delay`` later,
the way a bottleneck with a propagation delay behaves (``tc ... tbf`` plus ``netem delay``,
which this kernel lacks). A new connection's first request waits one extra round trip, as a
TCP handshake does. What it does not model: loss, and the sender's congestion window (the
relay acknowledges at loopback speed, so TCP's slow start costs nothing here; a real link's
first round trips are slower). Its queue holds at most ``QUEUE_LIMIT`` bytes per direction,
so a fast sender is held back, as by a full router queue.

The shape is read when a connection is accepted, so ``relay.shape = ...`` between two runs
switches the link without restarting anything.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SPLICE_CHUNK = 1 << 20
SHAPED_CHUNK = 16 << 10  # 6.5 ms at 20 Mbit/s: fine enough for pacing
QUEUE_LIMIT = 512 << 10
ACCEPT_POLL = 0.2


@dataclass(frozen=True)
class Shape:
    """A link: ``rate`` bits per second each way, ``delay`` seconds added each way."""

    rate: float
    delay: float

    def describe(self) -> str:
        return f"{self.rate / 1e6:g} Mbit/s each way, +{self.delay * 1000:g} ms each way"


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = 0
        self.down = 0

    def add(self, upward: bool, count: int) -> None:
        with self._lock:
            if upward:
                self.up += count
            else:
                self.down += count

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.up, self.down


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _splice_one_way(src: socket.socket, dst: socket.socket, count: _Counter, up: bool) -> None:
    read_end, write_end = os.pipe()
    try:
        while True:
            moved = os.splice(src.fileno(), write_end, SPLICE_CHUNK)
            if moved == 0:
                break
            left = moved
            while left:
                left -= os.splice(read_end, dst.fileno(), left)
            count.add(up, moved)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        _close(src, dst)  # a reset on one side ends both
    finally:
        os.close(read_end)
        os.close(write_end)


class _ShapedWay:
    """One direction of a shaped connection: a reader that schedules, a writer that delivers."""

    def __init__(
        self,
        src: socket.socket,
        dst: socket.socket,
        shape: Shape,
        count: _Counter,
        up: bool,
        link_free: float,
    ) -> None:
        self.src, self.dst, self.shape, self.count, self.up = src, dst, shape, count, up
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.link_free = link_free  # when the bottleneck has sent all it was given
        self.done = False
        self.cond = threading.Condition()

    def read(self) -> None:
        try:
            while True:
                with self.cond:
                    while self.queued > QUEUE_LIMIT and not self.done:
                        self.cond.wait(ACCEPT_POLL)
                    if self.done:
                        return
                data = self.src.recv(SHAPED_CHUNK)
                now = time.monotonic()
                with self.cond:
                    start = max(now, self.link_free)
                    self.link_free = start + len(data) * 8 / self.shape.rate
                    self.queue.append((self.link_free + self.shape.delay, data))
                    self.queued += len(data)
                    self.cond.notify_all()
                if not data:
                    return
        except OSError:
            self.stop()

    def write(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.done:
                        self.cond.wait(ACCEPT_POLL)
                    if self.done:
                        return
                    due, data = self.queue[0]
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    self.dst.shutdown(socket.SHUT_WR)
                    with self.cond:
                        self.done = True
                    return
                self.dst.sendall(data)
                self.count.add(self.up, len(data))
                with self.cond:
                    self.queue.popleft()
                    self.queued -= len(data)
                    self.cond.notify_all()
        except OSError:
            self.stop()

    def stop(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()
        _close(self.src, self.dst)


class Relay:
    """Listens on 127.0.0.1 (port 0) and relays each connection to ``target``."""

    def __init__(self, target: tuple[str, int], shape: Shape | None = None) -> None:
        self.target = target
        self.shape = shape
        self._count = _Counter()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._ways: list[_ShapedWay] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counted(self) -> tuple[int, int]:
        """Bytes relayed so far: (client to server, server to client)."""
        return self._count.read()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted = time.monotonic()
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._start(client, server, accepted)

    def _start(self, client: socket.socket, server: socket.socket, accepted: float) -> None:
        shape = self.shape
        targets: list[tuple[Callable[..., None], tuple[object, ...]]]
        if shape is None:
            targets = [
                (_splice_one_way, (client, server, self._count, True)),
                (_splice_one_way, (server, client, self._count, False)),
            ]
        else:
            # The client's first bytes wait for the handshake: SYN out and SYN-ACK back.
            up = _ShapedWay(client, server, shape, self._count, True, accepted + 2 * shape.delay)
            down = _ShapedWay(server, client, shape, self._count, False, accepted)
            targets = [(way.read, ()) for way in (up, down)]
            targets += [(way.write, ()) for way in (up, down)]
            with self._lock:
                self._ways += [up, down]
        left = [len(targets)]

        def run(fn: Callable[..., None], args: tuple[object, ...]) -> None:
            try:
                fn(*args)
            finally:
                with self._lock:
                    left[0] -= 1
                    last = left[0] == 0
                if last:  # both ways finished: this connection is over
                    _close(client, server)

        threads = [threading.Thread(target=run, args=target, daemon=True) for target in targets]
        with self._lock:
            self._sockets = [s for s in self._sockets if s.fileno() != -1] + [client, server]
            self._ways = [w for w in self._ways if not w.done]
            self._threads = [t for t in self._threads if t.is_alive()] + threads
        for thread in threads:
            thread.start()

    def close(self) -> None:
        """Stop accepting, cut every connection and wait (bounded) for the threads."""
        self._closed.set()
        _close(self._listener)
        self._acceptor.join(timeout=5)
        with self._lock:
            ways, sockets, threads = list(self._ways), list(self._sockets), list(self._threads)
        for way in ways:
            way.stop()
        _close(*sockets)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
