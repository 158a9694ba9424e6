"""Each request to the web-app listener: checked, then relayed to OpenCode.

Every request is checked before anything reaches OpenCode: no live sign-in → a page load is
sent to the console's sign-in and other requests get 401; a state-changing request from
another origin → 403. Then it is relayed with the proxy's own machinery (``manager.proxy``):
the browser's cookie and credentials are dropped, OpenCode's Basic credentials are added (the
browser never learns them), bodies stream both ways, and every event stream holds a lease on
the ``StreamTracker`` like the TUI's, so it counts towards ``--max-streams``. An event stream
also ends once its sign-in does. OpenCode's terminal needs a WebSocket, which WSGI cannot
carry: starting one (``POST /pty``) and connecting to one get a 501 JSON that says so, no
shell is left running on the Manager for a terminal that could never connect, and the app's
page carries a small script of ours that shows that message when it happens. A page load
while OpenCode is starting, restarting or down does not wait for it as the app's calls do:
it gets at once a page that says so and loads the app by itself once OpenCode answers.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from manager.errors import ApiError, wsgi_error
from manager.opencode import EXTERNAL, RUNNING
from manager.proxy.wsgi import (
    PREFIX,
    Proxy,
    RelayBody,
    _forward,
    auth_failed,
    event_directory,
    event_target,
    response_headers,
    status_line,
)
from manager.web.opencode_app.links import console_url, web_app_base
from manager.web.proxy_faults import proxy_fault
from manager.web.return_to import signin_path
from manager.web.signin import origin_ok, signed_in

log = logging.getLogger("manager.web.opencode_app")

# An open event stream re-checks its sign-in at most this often (a database read).
SIGNIN_RECHECK_SECONDS = 2.0
# Never passed to OpenCode: the console's cookie (it names a sign-in to the Manager) and
# whatever the browser would use as credentials; the proxy adds OpenCode's own.
DROP_FROM_BROWSER = ("HTTP_COOKIE", "HTTP_AUTHORIZATION")
# The app's cookies are the console's: OpenCode setting one on this host could shadow it.
DROP_FROM_OPENCODE = frozenset({"set-cookie", "set-cookie2"})
# The one path of the app's origin that is the Manager's: the script that says on the page
# why the terminal cannot start (OpenCode's CSP allows scripts from 'self' only).
NOTICE_PATH = "/__ocm/terminal-notice.js"
NOTICE_SCRIPT = (Path(__file__).with_name("terminal-notice.js")).read_bytes()
NOTICE_TAG = f'<script src="{NOTICE_PATH}"></script>'.encode()
# The app's page is a few KB; anything larger is passed on untouched.
MAX_PAGE = 256 * 1024
# On every answer, OpenCode's and the Manager's own (a redirect, a refusal, a page): no page
# of another origin frames this one (a signed-in app under a decoy), and no answer is read as
# another type than the one it says. Added in one place, ``OpencodeWebApp.__call__``.
EVERY_ANSWER = [("X-Frame-Options", "SAMEORIGIN"), ("X-Content-Type-Options", "nosniff")]
# OpenCode gives its app's page a policy of its own, and nothing else: the rest is data, and
# some of it is whatever a repo holds (``GET /api/fs/read/<path>`` answers any file, typed by
# its name). Opened as a page, a repo's ``.html`` would run as the app, with the sign-in, and
# could drive OpenCode's shell: without a policy of its own, an answer is sandboxed — no
# script runs, no cookie is its — wherever the browser shows it. A policy on a subresource
# (a script, an image, a fetch) has no effect; a worker's script is left alone, as a worker
# would take it for its own.
INERT = ("Content-Security-Policy", "sandbox")
WORKERS = frozenset({"worker", "sharedworker", "serviceworker"})
# The page shown while OpenCode does not answer loads the app again this often (a meta
# refresh: no script, so the strictest policy holds).
RETRY_SECONDS = 5
# The Manager's own pages on this origin: plain text and links, nothing to load or run.
OWN_PAGE_POLICY = (
    "Content-Security-Policy",
    "default-src 'none'; frame-ancestors 'self'; base-uri 'none'",
)


def _is_get(environ: dict[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") == "GET"


def _rebased(environ: dict[str, Any]) -> dict[str, Any]:
    """The request as the proxy would have received it under its prefix, minus what only
    the Manager may see, so that the proxy's own functions forward it unchanged."""
    forwarded = {k: v for k, v in environ.items() if k not in DROP_FROM_BROWSER}
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if raw.startswith(("http://", "https://")):  # absolute form: keep path and query
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
    if raw:
        forwarded["REQUEST_URI"] = PREFIX + raw
        forwarded.pop("RAW_URI", None)
    forwarded["PATH_INFO"] = PREFIX + environ.get("PATH_INFO", "")
    return forwarded


def _opens_terminal(environ: dict[str, Any]) -> bool:
    """``POST /pty`` (however spelled: OpenCode's router forgives case, escapes, extra or
    trailing slashes and ``;params``) would start a shell that no WebSocket can reach."""
    if environ.get("REQUEST_METHOD") != "POST":
        return False
    path = unquote(environ.get("PATH_INFO", "")).split(";", 1)[0].lower()
    return "/".join(part for part in path.split("/") if part) == "pty"


def _wants_page(environ: dict[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") in ("GET", "HEAD") and (
        environ.get("HTTP_SEC_FETCH_DEST") == "document"
        or "text/html" in environ.get("HTTP_ACCEPT", "")
    )


def _signin_returning_here(environ: dict[str, Any], services: Any) -> str:
    """The console's sign-in page, asked to come back to this page of the app afterwards
    (a link into a repo's sessions, opened signed out)."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    scheme = environ.get("wsgi.url_scheme", "http")
    base = web_app_base(services, environ.get("HTTP_HOST", ""), scheme)
    if base is None or not raw.startswith("/"):
        return "/signin"
    return signin_path(base + raw)


def _signin_page(start_response: Any) -> list[bytes]:
    """For a page load when the console's public address is unknown (``--web-app-url``)."""
    body = (
        b"<!doctype html><meta charset=utf-8>"
        b'<meta name="viewport" content="width=device-width, initial-scale=1">'
        b"<title>Sign in first</title>"
        b"<p>This is OpenCode's web app on the ocm Manager. Sign in on the Manager's console"
        b" with the Manager token first, then reload this page.</p>"
    )
    start_response(
        "401 Unauthorized",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            OWN_PAGE_POLICY,
        ],
    )
    return [body]


def _unavailable_page(
    environ: dict[str, Any], services: Any, start_response: Any, exc: ApiError
) -> list[bytes]:
    """A page load that OpenCode cannot answer: what is happening and what to do, in place of
    the JSON the app's own calls get; it tries again by itself while OpenCode may come back."""
    retry = exc.status in (502, 504)
    console = console_url(environ, services)
    health = (
        f'<a href="{html.escape(console)}/health">the Manager\'s Health page</a>'
        if console
        else "the Manager's Health page"
    )
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{RETRY_SECONDS}">' if retry else "",
        "<title>OpenCode is not available · ocm Manager</title>",
        "<main><h1>OpenCode is not available</h1>",
        f"<p role=status>{html.escape(exc.message)}</p>",
        f"<p>This page tries again every {RETRY_SECONDS} seconds and opens OpenCode's web app"
        " once it answers."
        if retry
        else "",
        f"<p>OpenCode's state and its log are on {health}.</p></main>",
    ]
    body = "".join(parts).encode()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        OWN_PAGE_POLICY,
    ]
    if retry:
        headers.append(("Retry-After", str(RETRY_SECONDS)))
    start_response(f"{exc.status} {HTTPStatus(exc.status).phrase}", headers)
    return [body]


def _not_answering(services: Any) -> ApiError | None:
    """Why OpenCode cannot answer a page load now, if it is starting or restarting: the app's
    calls wait for it (``READY_WAIT``), but a person would watch a blank tab meanwhile."""
    upstream = services.opencode
    if upstream is None or not upstream.configured or upstream.state in (RUNNING, EXTERNAL):
        return None
    return ApiError(
        502,
        "opencode_unavailable",
        f"OpenCode is {upstream.state} on the Manager (it takes a few seconds to start).",
    )


def not_signed_in(console: str | None = None) -> ApiError:
    """``console``: the Manager's own address, when known. Given as ``managerUrl`` too (null
    when unknown): that field tells ``ocm`` pointed here by mistake that this is the web
    app's listener, and which URL it should have had."""
    where = console or "its address in a browser"
    return ApiError(
        401,
        "not_signed_in",
        f"OpenCode's web app needs the Manager's sign-in: sign in on the Manager's console"
        f" ({where}) with the Manager token, then reload.",
        {"managerUrl": console},
    )


def cross_origin() -> ApiError:
    return ApiError(
        403,
        "cross_origin",
        "This request did not come from OpenCode's web app on this Manager; reload the app"
        " and retry.",
    )


def websocket_unsupported() -> ApiError:
    return ApiError(
        501,
        "websocket_unsupported",
        "OpenCode's terminal needs a WebSocket, which the Manager cannot carry, so it does not"
        " work in the browser; everything else does. For a shell on the Manager, use ssh.",
    )


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


def _with(headers: list[tuple[str, str]], added: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names = {name.lower() for name, _ in added}
    return [(k, v) for k, v in headers if k.lower() not in names] + added


def _guarded(environ: dict[str, Any], headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """OpenCode's headers, made inert (``INERT``) when they carry no policy of their own."""
    if _header(headers, "content-security-policy") or (
        environ.get("HTTP_SEC_FETCH_DEST") in WORKERS
    ):
        return headers
    return _with(headers, [INERT])


def _is_app_page(environ: dict[str, Any], status: int, headers: list[tuple[str, str]]) -> bool:
    """The app's HTML page (OpenCode gives it a policy of its own), whole and uncompressed
    (OpenCode sends it so), small enough to read at once."""
    length = _header(headers, "content-length")
    return (
        environ.get("REQUEST_METHOD") == "GET"
        and status == 200
        and _header(headers, "content-type").lower().startswith("text/html")
        and bool(_header(headers, "content-security-policy"))
        and not _header(headers, "content-encoding")
        and length.isdigit()
        and int(length) <= MAX_PAGE
    )


def _with_notice(
    body: RelayBody, start_response: Any, status: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    """The app's page with our terminal notice script before ``</head>``: a classic script
    there runs before the app's deferred module and so wraps ``fetch`` before the app uses it."""
    try:
        page = b"".join(body)
    finally:
        body.close()
    if b"</head>" in page:
        page = page.replace(b"</head>", NOTICE_TAG + b"</head>", 1)
    headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "etag")]
    start_response(status, [*headers, ("Content-Length", str(len(page)))])
    return [page]


def _script(start_response: Any) -> list[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/javascript; charset=utf-8"),
            ("Content-Length", str(len(NOTICE_SCRIPT))),
            ("Cache-Control", "no-cache"),
        ],
    )
    return [NOTICE_SCRIPT]


class SignedInStream:
    """An event stream's body that ends once the sign-in it was opened with does (sign-out,
    expiry, ``token rotate``), checked as events pass and at most every few seconds.

    OpenCode sends a heartbeat every 10 s, so an idle stream notices within that."""

    def __init__(self, body: RelayBody, cookie_environ: dict[str, Any], services: Any) -> None:
        self.body = body
        self.cookie_environ = cookie_environ
        self.services = services

    def __iter__(self) -> Iterator[bytes]:
        checked = time.monotonic()
        for chunk in self.body:
            now = time.monotonic()
            if now - checked >= SIGNIN_RECHECK_SECONDS:
                checked = now
                if not signed_in(self.cookie_environ, self.services):
                    log.info("ending an event stream of OpenCode's web app: signed out")
                    return
            yield chunk

    def close(self) -> None:
        self.body.close()


class OpencodeWebApp:
    """The WSGI application of the web-app listener: the whole origin is OpenCode's."""

    def __init__(self, services: Any, proxy: Proxy) -> None:
        self.services = services
        # The proxy's connection pool and disconnect watcher, shared: one budget of
        # connections to OpenCode, and shutdown ends the app's streams with the TUIs'.
        self.proxy = proxy

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            return start_response(status, _with(headers, EVERY_ANSWER), *exc_info)

        return self._answer(environ, start)

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self._serve(environ, start_response)
        except ApiError as exc:
            if _wants_page(environ) and exc.status in (502, 503, 504):
                return _unavailable_page(environ, self.services, start_response, exc)
            return wsgi_error(start_response, exc)
        except Exception:
            log.exception("unhandled error serving OpenCode's web app")
            return wsgi_error(
                start_response,
                ApiError(
                    500, "internal_error", "The Manager hit an unexpected error; see its log."
                ),
            )

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Any:
        services = self.services
        if not signed_in(environ, services):
            if _wants_page(environ):
                console = console_url(environ, services)
                if console is not None:
                    where = console + _signin_returning_here(environ, services)
                    start_response("303 See Other", [("Location", where), ("Content-Length", "0")])
                    return [b""]
                return _signin_page(start_response)
            raise not_signed_in(console_url(environ, services))
        if not origin_ok(environ):
            raise proxy_fault(environ) or cross_origin()
        if environ.get("HTTP_UPGRADE") or _opens_terminal(environ):
            raise websocket_unsupported()
        if environ.get("PATH_INFO") == NOTICE_PATH:
            return _script(start_response)
        not_answering = _not_answering(services) if _wants_page(environ) else None
        if not_answering is not None:
            raise not_answering
        endpoint = self.proxy._endpoint()
        forwarded = _rebased(environ)
        # Event streams go to OpenCode under their canonical path, as the proxy sends them.
        target = event_target(forwarded, endpoint.base_path) if _is_get(environ) else None
        conn, response, key = _forward(self.proxy, forwarded, endpoint, target)
        if response.status == 401:
            RelayBody(self.proxy, conn, response, key).close()
            raise auth_failed()
        headers = [
            (name, value)
            for name, value in response_headers(response)
            if name.lower() not in DROP_FROM_OPENCODE
        ]
        content_type = _header(headers, "content-type")
        body = RelayBody(self.proxy, conn, response, key)
        app_page = _is_app_page(environ, response.status, headers)
        headers = _guarded(environ, headers)
        if app_page:
            return _with_notice(body, start_response, status_line(response), headers)
        if not content_type.lower().startswith("text/event-stream"):
            start_response(status_line(response), headers)
            return body
        # An event stream, whatever spelling of whichever route opened it: it holds a
        # worker for its whole life, so it counts like a TUI's (and gives the repo inUse).
        streams = services.streams
        directory = event_directory(environ)
        limit = services.settings.max_streams
        if not streams.acquire(directory, limit):
            body.close()
            raise ApiError(
                503,
                "too_many_streams",
                f"The Manager already holds {limit} event streams (its --max-streams limit);"
                " close a TUI or a browser tab, or raise the limit.",
            )
        body.on_close = lambda: streams.release(directory)
        start_response(status_line(response), headers)
        return SignedInStream(body, {"HTTP_COOKIE": environ.get("HTTP_COOKIE", "")}, services)
