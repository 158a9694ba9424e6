"""The console's sign-in: a session cookie in exchange for the Manager token.

How to use it (the console and OpenCode's web app share it): a WSGI app or a Flask view
calls ``signed_in(environ, services)`` with the request's WSGI environ and the Manager's
``Services`` (``app.extensions["ocm"]``); it is True only when the ``Cookie`` header
carries ``services.cookie_name`` (see ``cookie_name``) naming a sign-in that has not
expired and was made with the token that is current now — ``ocm-manager token rotate`` or
the Settings page replaces the token, which ends every sign-in at once. Before acting on a
state-changing request (any method but GET, HEAD and OPTIONS) call ``origin_ok(environ)``:
True when the browser's ``Origin`` (or, lacking it, ``Referer``) is this very origin —
scheme, host and port as the request arrived (``wsgi.url_scheme`` is https behind the
reverse proxy named by ``--trusted-proxy``, which waitress honours) — or one of
``also_allowed``; answer 403 otherwise. Sessions live in the
registry, keyed by a hash of the cookie, so the database never holds a usable cookie.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.http import parse_cookie

COOKIE_PREFIX = "ocm_session_"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def cookie_name(instance_id: str) -> str:
    """The sign-in cookie's name for the Manager of ``instance_id`` (``Registry.instance_id``).

    Browsers keep cookies by host name, not port: two Managers on one host (two ports, or
    two TLS sites on one name) would share one fixed name, and each sign-in would replace
    the other's cookie, signing that browser out of the other Manager."""
    return COOKIE_PREFIX + instance_id


def session_cookie(environ: dict[str, Any], name: str) -> str | None:
    return parse_cookie(environ).get(name) or None


def session_digest(cookie_header: str | None, name: str) -> str | None:
    """What the registry (and the Manager's ``TokenWatch``) knows a sign-in by, from a raw
    ``Cookie`` header and the cookie's ``name``; None when it names none."""
    value = parse_cookie(cookie_header or "").get(name) if cookie_header else None
    return _digest(value) if value else None


def _tell_watch(services: Any) -> None:
    """The connection guard trusts a sign-in once the Manager's ``TokenWatch`` knows it: at
    once for this process's own sign-ins and sign-outs, not at its next poll."""
    watch = getattr(services, "token_watch", None)
    if watch is not None:
        with contextlib.suppress(Exception):  # a busy database: the watch's poll catches up
            watch.check()


def signed_in(environ: dict[str, Any], services: Any) -> bool:
    """True when the request carries a live sign-in made with the current token."""
    value = session_cookie(environ, services.cookie_name)
    if not value:
        return False
    registry = services.registry
    found = registry.web_session(_digest(value))
    current = registry.token_hash()
    if found is None or current is None:
        return False
    token_at_signin, expires_at = found
    return hmac.compare_digest(token_at_signin, current) and expires_at > time.time()


def start_session(services: Any) -> str:
    """Record a new sign-in under the current token and return the cookie's value."""
    value = secrets.token_urlsafe(32)
    token_hash = services.registry.token_hash() or ""
    services.registry.add_web_session(_digest(value), token_hash, time.time() + SESSION_SECONDS)
    _tell_watch(services)
    return value


def end_session(environ: dict[str, Any], services: Any) -> None:
    value = session_cookie(environ, services.cookie_name)
    if value:
        services.registry.remove_web_session(_digest(value))
        _tell_watch(services)


def is_https(environ: dict[str, Any]) -> bool:
    """Whether the browser reached us over HTTPS (then the cookie is Secure).

    Waitress rewrites ``wsgi.url_scheme`` from ``X-Forwarded-Proto`` only when the request
    comes from the ``--trusted-proxy`` address, and drops the header otherwise."""
    return environ.get("wsgi.url_scheme") == "https"


def own_origin(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    default_port = {"http": ":80", "https": ":443"}.get(scheme, "")
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}".lower()


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_ok(environ: dict[str, Any], also_allowed: Iterable[str] = ()) -> bool:
    """CSRF check: the request was sent by a page of this origin (or of ``also_allowed``).

    Safe methods always pass. A state-changing request without ``Origin`` and ``Referer``
    is refused: every browser that could carry our cookie sends one of them."""
    if environ.get("REQUEST_METHOD", "GET").upper() in SAFE_METHODS:
        return True
    origin = sent_origin(environ)
    if origin is None:
        return False
    allowed = {own_origin(environ), *(o.lower().rstrip("/") for o in also_allowed)}
    return origin in allowed


def sent_origin(environ: dict[str, Any]) -> str | None:
    """The origin of the page that sent the request: ``Origin``, else ``Referer``'s (a
    browser that sends ``Origin: null`` has no origin to fall back on)."""
    sent = environ.get("HTTP_ORIGIN")
    origin = sent.lower() if sent and sent != "null" else None
    if origin is None and not sent:
        origin = _origin_of(environ.get("HTTP_REFERER", ""))
    return origin.rstrip("/") if origin is not None else None


class SignInThrottle:
    """At most ``burst`` sign-in attempts at once per address, refilled at ``per_second``.

    A token is 256 random bits, so this is not what keeps it safe; it keeps a guesser from
    burning the Manager's CPU and filling its log."""

    def __init__(self, per_second: float = 1.0, burst: int = 5, max_addresses: int = 10_000):
        self.per_second = per_second
        self.burst = burst
        self.max_addresses = max_addresses
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, address: str) -> float:
        """0 when this attempt may go ahead, else the seconds to wait before the next one."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) >= self.max_addresses:
                self._forget_full(now)
            tokens, last = self._buckets.get(address, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
            if tokens < 1:
                self._buckets[address] = (tokens, now)
                return (1 - tokens) / self.per_second
            self._buckets[address] = (tokens - 1, now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.per_second
        self._buckets = {a: b for a, b in self._buckets.items() if now - b[1] < refill}
