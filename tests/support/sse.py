"""Raw event-stream clients for proxy tests: one plain socket per stream, so a test can hold
many at once, read events as they arrive, and hang up abruptly like a closed laptop lid."""

from __future__ import annotations

import contextlib
import socket
import time
from urllib.parse import urlsplit


class EventStream:
    def __init__(self, base_url: str, target: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""

    def read_until(self, marker: bytes, timeout: float = 30.0) -> bytes:
        """Everything received so far once ``marker`` is in it; raises on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{marker!r} not received; got {self.buffer[-500:]!r}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"stream ended before {marker!r}: {self.buffer[-500:]!r}")
            self.buffer += data
        return self.buffer

    def status(self) -> int:
        head = self.read_until(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
