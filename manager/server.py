"""Waitress: the one place the HTTP server is configured and started."""

from __future__ import annotations

import sys
from typing import Any

from manager.config import Settings


def waitress_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "threads": settings.threads,
        "ident": "ocm-manager",
        # Waitress buffers a whole request body before the app runs, even an
        # unauthenticated one (FIELD-NOTES): cap it.
        "max_request_body_size": settings.max_upload_bytes,
        "clear_untrusted_proxy_headers": True,
    }


def serve(app: Any, settings: Settings) -> None:
    """Bind, say where (tests and scripts parse this line), and serve until interrupted."""
    from waitress.server import create_server

    server = create_server(app, **waitress_options(settings))
    try:
        port = getattr(server, "effective_port", settings.port)
        print(f"ocm-manager: listening on http://{settings.host}:{port}", file=sys.stderr,
              flush=True)
        server.run()
    finally:
        server.close()
