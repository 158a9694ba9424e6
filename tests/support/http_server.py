"""A small HTTP server of the tests' own on 127.0.0.1, for stand-ins at the edge."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInServer(ThreadingHTTPServer):
    """A threading HTTP server that lets a client hang up quietly: the Manager or OpenCode
    ending a request early is part of what is tested, not a failure of the stand-in, and
    socketserver's traceback for it would land between the test run's dots."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler] | Any) -> Iterator[str]:
    """Serve with ``handler`` (a request handler class, or a factory of one) on a free port
    of 127.0.0.1 for the length of the block; yields the server's base URL."""
    server = StandInServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
