"""Addresses of OpenCode's web app: its URL scheme for a directory, and the way between the
console's listener and the app's (same host name, each its own port)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlsplit

# The names ``Services.ports`` gives the two listeners (``manager.server`` fills it in).
CONSOLE = "console"
WEB_APP = "opencode_app"


def encode_directory(directory: str) -> str:
    """The app's spelling of a directory in its URLs: URL-safe base64 of the UTF-8 path
    without padding (its ``/:dir/session/:id?`` route, OpenCode 1.18)."""
    return base64.urlsafe_b64encode(directory.encode("utf-8")).decode("ascii").rstrip("=")


def app_url_for(
    directory: str,
    services: Any,
    console_host: str,
    *,
    scheme: str = "http",
    session_id: str | None = None,
) -> str | None:
    """The address that opens ``directory``'s sessions (or one session) in OpenCode's web app.

    For the console's "Sessions" link on each repo: pass the repo's directory, the Manager's
    ``Services`` and the console request's ``Host`` header and scheme (``request.host``,
    ``request.scheme``), so the link names the host the browser already uses — where its
    sign-in cookie is. None when the Manager serves no web app (``--no-opencode``,
    ``--web-app-port off``): show no link then. ``--web-app-url`` (the app's address behind
    a TLS proxy) wins over the derived one.
    """
    base = web_app_base(services, console_host, scheme)
    if base is None:
        return None
    path = f"/{encode_directory(directory)}/session"
    if session_id:
        path += "/" + quote(session_id, safe="")
    return base + path


def web_app_base(services: Any, console_host: str, scheme: str = "http") -> str | None:
    configured = getattr(services.settings, "web_app_url", None)
    if configured:
        return str(configured).rstrip("/")
    port = services.ports.get(WEB_APP)
    if port is None:
        return None
    return f"{scheme}://{_with_port(console_host, port)}"


def console_url(environ: dict[str, Any], services: Any) -> str | None:
    """The console's address as seen from a request to the app (same host, the console's
    port); None behind ``--web-app-url``, where the public console address is unknown."""
    if getattr(services.settings, "web_app_url", None):
        return None
    port = services.ports.get(CONSOLE)
    host = environ.get("HTTP_HOST")
    if port is None or not host:
        return None
    return f"{environ.get('wsgi.url_scheme', 'http')}://{_with_port(host, port)}"


def _with_port(host: str, port: int) -> str:
    """``host`` (a Host header: name, ``name:port``, ``[v6]:port``) with another port."""
    hostname = urlsplit(f"//{host}").hostname or host
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    return f"{hostname}:{port}"
