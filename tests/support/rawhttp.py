"""HTTP over raw sockets, for tests about what the Manager does with connections themselves
(``manager.connection_guard``): one answer, everything until close, an upload that watches
for an early answer, and whether the Manager closed a connection."""

from __future__ import annotations

import contextlib
import select
import socket
import time

MIB = 1024**2


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(url: str, timeout: float = 10) -> socket.socket:
    return socket.create_connection(address(url), timeout=timeout)


def read_one_answer(sock: socket.socket) -> bytes:
    """One whole answer with a Content-Length, however TCP cut it, leaving the connection
    ready for the next request."""
    received = b""
    while b"\r\n\r\n" not in received:
        block = sock.recv(65536)
        assert block, received
        received += block
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        block = sock.recv(65536)
        assert block, received + body
        body += block
    return head + b"\r\n\r\n" + body


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything until the Manager closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while block := sock.recv(65536):
            received += block
    return received


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the other side closes the connection within ``timeout`` without sending
    anything; False when it is still open then."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def upload_until_answered(sock: socket.socket, limit: int) -> tuple[bytes, int]:
    """Send body bytes while watching for an answer; (what came back, bytes sent)."""
    sock.setblocking(False)
    block = b"\0" * MIB
    sent = 0
    answer = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
        readable, writable, _ = select.select([sock], [sock] if sent < limit else [], [], 1)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
        elif writable:
            try:
                sent += sock.send(block)
            except (BrokenPipeError, ConnectionResetError):
                # The Manager closed its side: what it answered is still to be read.
                select.select([sock], [], [], 2)
    sock.setblocking(True)
    return answer + read_answer(sock, timeout=5), sent
