"""A recording stand-in for ``opencode serve`` at the edge of the system: a tiny stdlib HTTP
server on 127.0.0.1 port 0 that keeps every request it gets, exactly as it arrived, and
answers by path:

- ``/gzip``: a fixed gzip body with its Content-Encoding and Content-Length;
- ``/event``, ``/global/event``, ``/unlisted-stream``: a Server-Sent-Events stream that
  sends one event, then waits until the proxy closes the connection (and records that it did);
- ``/status/<code>``: that status, with a hop-by-hop header named in ``Connection``;
- ``/challenge``: 401 with a ``WWW-Authenticate`` challenge;
- ``/chunked``: ``CHUNKS`` in chunked encoding, a moment apart, with a trailer;
- ``/until-close``: ``UNTIL_CLOSE_BODY`` with no length: the body ends when the connection does;
- ``/big``: ``BIG_BODY`` (24 MB) with its Content-Length;
- ``/cut``: a Content-Length of 1000 and 10 bytes of body, then the connection closes;
- ``/chunked-cut``: one chunk of a chunked answer, then the connection closes;
- ``/then-close``: 200, then the connection closes although it said keep-alive;
- ``/slow``: waits up to 10 s for the proxy to hang up (and records that it did), else 200;
- anything else: 200 with a JSON summary of the request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.env import isolated_environ
from tests.support.http_server import StandInServer

GZIP_PLAIN = b"".join(f'{{"n": {i}, "text": "hello proxy"}}\n'.encode() for i in range(20000))
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)
CHUNKS = [b'{"part": 1}\n', b"x" * 70_000, b'{"part": 3}\n']
UNTIL_CLOSE_BODY = b"no length, ends with the connection\n" * 1000
BIG_BODY = hashlib.sha256(b"seed").digest() * (24 * 1024 * 1024 // 32)
# The password a Manager in front of the stand-in (``--opencode-url``) sends it as OpenCode's.
PASSWORD = "upstream-secret-" + "x" * 24


def stand_in_env(home: Path) -> dict[str, str]:
    """The environment of a Manager in front of the stand-in: isolated under ``home``, with
    ``PASSWORD`` as OpenCode's."""
    return {**isolated_environ(home), "OCM_OPENCODE_PASSWORD": PASSWORD}


@dataclass
class Recorded:
    method: str
    target: str  # the raw request-target: path and query exactly as sent
    headers: list[tuple[str, str]]
    body_sha256: str
    body_length: int
    client_port: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Recorder:
    requests: list[Recorded] = field(default_factory=list)
    open_streams: int = 0
    closed_streams: int = 0
    abandoned: int = 0  # /slow requests whose proxy connection closed before the answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.sha256()
        remaining = length
        while remaining:
            block = self.rfile.read(min(remaining, 1 << 16))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
        # self.path has leading slashes collapsed by http.server; the request line does not.
        target = self.requestline.split(" ")[1]
        recorded = Recorded(
            self.command,
            target,
            list(self.headers.items()),
            digest.hexdigest(),
            length - remaining,
            self.client_address[1],
        )
        with self.server.recorder.lock:
            self.server.recorder.requests.append(recorded)
        return recorded

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _handle(self) -> None:
        recorded = self._record()
        path = recorded.target.split("?", 1)[0]
        if path in ("/event", "/global/event", "/unlisted-stream"):
            self._stream()
        elif path == "/gzip":
            self._send(
                200, GZIP_BODY, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            )
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            self._send(
                status,
                b"" if status in (204, 304) else b"{}",
                {
                    "Content-Type": "application/json",
                    "Connection": "X-Hop",
                    "X-Hop": "must not pass",
                    "Keep-Alive": "timeout=5",
                    "X-End-To-End": "kept",
                    "Set-Cookie": "a=1; Path=/",
                },
            )
        elif path == "/challenge":
            self._send(401, b"no", {"WWW-Authenticate": 'Basic realm="opencode"'})
        elif path in self.special:
            self.special[path](self)
        else:
            summary = {
                "method": recorded.method,
                "target": recorded.target,
                "length": recorded.body_length,
                "sha256": recorded.body_sha256,
            }
            self._send(200, json.dumps(summary).encode(), {"Content-Type": "application/json"})

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = b'data: {"type":"server.connected","properties":{}}\n\n'
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        with self.server.recorder.lock:
            self.server.recorder.open_streams += 1
        try:
            # No heartbeat: without the proxy's disconnect watcher this would never end.
            while self.rfile.read(1):
                pass
        except OSError:
            pass
        finally:
            with self.server.recorder.lock:
                self.server.recorder.open_streams -= 1
                self.server.recorder.closed_streams += 1
            self.close_connection = True

    def _chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum")
        self.end_headers()
        for chunk in CHUNKS:
            self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(b"0\r\nX-Checksum: abc\r\n\r\n")

    def _write_then_close(self, header: tuple[str, str], wire: bytes) -> None:
        """A 200 with ``header``, then ``wire`` as the body bytes, then the connection ends."""
        self.send_response(200)
        self.send_header(*header)
        self.end_headers()
        self.wfile.write(wire)
        self.close_connection = True

    def _until_close(self) -> None:
        self._write_then_close(("Content-Type", "text/plain"), UNTIL_CLOSE_BODY)

    def _big(self) -> None:
        self._send(200, BIG_BODY, {"Content-Type": "application/octet-stream"})

    def _cut(self) -> None:
        self._write_then_close(("Content-Length", "1000"), b"0123456789")

    def _chunked_cut(self) -> None:
        self._write_then_close(("Transfer-Encoding", "chunked"), b"a\r\n0123456789\r\n")

    def _then_close(self) -> None:
        self._send(200, b"{}", {"Content-Type": "application/json"})
        self.close_connection = True

    def _slow(self) -> None:
        ready, _, _ = select.select([self.connection], [], [], 10.0)
        if ready and not self.connection.recv(1, socket.MSG_PEEK):
            with self.server.recorder.lock:
                self.server.recorder.abandoned += 1
            self.close_connection = True
            return
        self._send(200, b"{}", {"Content-Type": "application/json"})

    special = {
        "/chunked": _chunked,
        "/until-close": _until_close,
        "/big": _big,
        "/cut": _cut,
        "/chunked-cut": _chunked_cut,
        "/then-close": _then_close,
        "/slow": _slow,
    }

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class _Server(StandInServer):
    recorder: Recorder


class RecordingUpstream:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.recorder = self.recorder
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def requests(self) -> list[Recorded]:
        with self.recorder.lock:
            return list(self.recorder.requests)

    def last(self) -> Recorded:
        return self.requests[-1]
