"""``/api/opencode-proxy/<path>``: the token-protected, streaming reverse proxy (SPEC §5).

``wsgi`` is the WSGI application that answers on a worker, ``loop`` relays ordinary
requests on waitress' event loop, ``upstream`` is the HTTP client both use to reach OpenCode.
"""

from __future__ import annotations

from manager.proxy.wsgi import (
    PREFIX,
    Proxy,
    RelayBody,
    event_directory,
    event_target,
    is_event_stream,
    is_proxy_path,
    request_headers,
    response_headers,
    upstream_target,
)

__all__ = [
    "PREFIX",
    "Proxy",
    "RelayBody",
    "event_directory",
    "event_target",
    "is_event_stream",
    "is_proxy_path",
    "request_headers",
    "response_headers",
    "upstream_target",
]
