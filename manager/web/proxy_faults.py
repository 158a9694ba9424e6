"""A form refused because the proxy in front of the Manager is set up wrong, said as such.

Both listeners (the console and OpenCode's web app) refuse a state-changing request whose
page is not their own origin. When that page is this very host, only seen wrongly, "reload
and retry" would loop for good: the refusal names the fault and its fix instead, and the log
says it once per proxy address.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from manager.errors import ApiError
from manager.web.signin import sent_origin

log = logging.getLogger("manager.web")

_warned_lock = threading.Lock()
_warned: set[tuple[str, str]] = set()
_MAX_WARNED = 100  # a bound on what a stream of forged requests can make us remember


def proxy_fault(environ: dict[str, Any]) -> ApiError | None:
    """Why a request from this host's own page looks foreign, if a proxy in front caused it:
    a TLS proxy the Manager does not believe (no ``--trusted-proxy``, or no
    ``X-Forwarded-Proto``), or one that passes ``Host`` without the port the browser used
    (nginx's ``$host``). None for any other origin."""
    origin = sent_origin(environ)
    if origin is None:
        return None
    page = urlsplit(origin)
    scheme = environ.get("wsgi.url_scheme", "http")
    seen = urlsplit(f"{scheme}://{environ.get('HTTP_HOST') or ''}")
    try:
        same_host = bool(seen.hostname) and page.hostname == seen.hostname
        page_port = page.port or {"http": 80, "https": 443}.get(page.scheme)
        seen_port = seen.port
    except ValueError:  # a port that is not a number: nothing to explain
        return None
    if not same_host:
        return None
    peer = str(environ.get("REMOTE_ADDR", ""))
    if page.scheme == "https" and scheme == "http" and seen_port in (None, 80, 443, page_port):
        _warn_once(
            "tls",
            peer,
            "a page on %s reached the Manager over plain HTTP from %s; if that is your TLS"
            " proxy, start the Manager with --trusted-proxy %s and have the proxy send"
            " X-Forwarded-Proto (README: Web console, Behind TLS)",
            origin,
            peer,
            peer,
        )
        return ApiError(
            403,
            "untrusted_proxy",
            f"Your browser is on {origin}, but the Manager was reached over plain HTTP: it"
            " does not believe the TLS proxy in front of it. Whoever runs the Manager must"
            " start it with --trusted-proxy <the proxy's address> (its log names it) and have"
            " the proxy send X-Forwarded-Proto; reloading will not help until then.",
        )
    if seen_port is None and page_port not in (None, 80, 443):
        _warn_once(
            "port",
            peer,
            "a page on %s reached the Manager from %s with Host %s, without the port; if"
            " that is your proxy, have it pass Host as the browser sent it (nginx:"
            " proxy_set_header Host $http_host)",
            origin,
            peer,
            seen.hostname,
        )
        return ApiError(
            403,
            "host_without_port",
            f"Your browser is on {origin}, but the proxy in front of the Manager passed on"
            f" the host without its port ({seen.hostname}). Whoever runs it must have it pass"
            " the Host header as the browser sent it (nginx: proxy_set_header Host"
            " $http_host); reloading will not help until then.",
        )
    return None


def _warn_once(kind: str, peer: str, message: str, *args: object) -> None:
    with _warned_lock:
        first = (kind, peer) not in _warned and len(_warned) < _MAX_WARNED
        if first:
            _warned.add((kind, peer))
    if first:
        log.warning(message, *args)
