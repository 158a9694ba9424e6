"""A tiny HTTP server on 127.0.0.1 port 0 that answers canned responses and records requests.

Used only where the real Manager cannot misbehave on purpose (HTML pages, 500s, hangs) and to
see the attach warm-up request from the outside.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.http_server import serving


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    # The body again and again until the client hangs up, under a Content-Length of a
    # terabyte: a server that is not a Manager and never stops sending.
    endless: bool = False


@dataclass
class StandIn:
    url: str
    routes: dict[str, Canned]
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Body bytes written, endless ones included.
    sent: int = 0
    default: Canned = field(default_factory=lambda: Canned(404, b"<html>nope</html>", "text/html"))

    def json_route(self, path: str, payload: Any, status: int = 200) -> None:
        self.routes[path] = Canned(status, json.dumps(payload).encode())


@contextlib.contextmanager
def serve(routes: dict[str, Canned] | None = None) -> Iterator[StandIn]:
    state = StandIn("", dict(routes or {}))

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            state.requests.append(
                {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "headers": dict(self.headers),
                }
            )
            canned = state.routes.get(path, state.default)
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(10**12 if canned.endless else len(canned.body)))
            self.end_headers()
            while True:
                self.wfile.write(canned.body)
                state.sent += len(canned.body)
                if not canned.endless:
                    return

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        state.url = url
        yield state
