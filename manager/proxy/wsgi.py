"""The proxy as a plain WSGI application: what a worker answers (SPEC §5).

It is what ``manager.app`` puts in front of Flask: a TUI sends every
keystroke's worth of API calls through here, and Flask's request context, routing and
response objects cost as much CPU per request as everything else the proxy does (bench/proxy.py).
It checks the Manager token itself (``manager.auth``), swaps it for OpenCode's own Basic
credentials, streams bodies both ways, sends Server-Sent Events on chunk by chunk as OpenCode
writes them, and holds a ``StreamTracker`` lease for every event stream's directory (a repo's
``inUse``) until waitress closes the response.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote, unquote, urlsplit

from waitress.channel import ClientDisconnected

from manager.auth import unauthorized
from manager.errors import ApiError, wsgi_error
from manager.opencode import DISABLED, Endpoint
from manager.proxy.events import canonical_event_path, is_event_stream_type
from manager.proxy.upstream import (
    BLOCK,
    Connection,
    DisconnectWatcher,
    Pool,
    ResponseHead,
    UpstreamError,
    client_gone_probe,
)
from manager.proxy.upstream import Response as UpstreamResponse
from manager.tokens import hash_token, presented_token, token_matches

log = logging.getLogger("manager.proxy")

PREFIX = "/api/opencode-proxy"
PREFIX_SEGMENTS = ["api", "opencode-proxy"]
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded upstream: the Manager's own credentials, what waitress already handled
# (Expect, the body's framing) and Host, which names the Manager, not OpenCode.
DROP_REQUEST = HOP_BY_HOP | {"authorization", "host", "expect", "content-length"}
# Never passed back: a challenge for OpenCode's password is no business of the client's.
DROP_RESPONSE = HOP_BY_HOP | {"www-authenticate"}
# Small bodies are sent with the headers in one write, and can be re-sent on a fresh
# connection when a pooled one turns out to be closed.
SMALL_BODY = 256 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A request that arrives while OpenCode (re)starts waits this long before getting a 502.
READY_WAIT = 30.0


def is_proxy_path(path_info: str) -> bool:
    return path_info == PREFIX or path_info.startswith(PREFIX + "/")


# -- requests ----------------------------------------------------------------------------


def upstream_target(environ: dict[str, Any], base_path: str) -> str:
    """The raw path and query after the prefix, exactly as the client sent them.

    PATH_INFO is decoded (``%2F`` becomes ``/``); REQUEST_URI is what was on the wire.
    """
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if raw.startswith(("http://", "https://")):  # absolute form: keep path and query
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
    if raw == PREFIX or raw.startswith((PREFIX + "/", PREFIX + "?")):
        rest = raw[len(PREFIX) :]
    else:  # the prefix itself was percent-encoded (``/api/%6Fpencode-proxy/...``)
        rest = _after_encoded_prefix(raw, environ)
    if not rest.startswith("/"):
        rest = "/" + rest
    return base_path + rest


def _after_encoded_prefix(raw: str, environ: dict[str, Any]) -> str:
    # Cut the prefix's segments off the raw target, so that the rest goes on as sent.
    segments = raw.split("/", 3)
    if len(segments) >= 3 and [unquote(s) for s in segments[1:3]] == PREFIX_SEGMENTS:
        return raw[len(segments[1]) + len(segments[2]) + 2 :]
    # Only when a segment hid a slash (``/api%2Fopencode-proxy``): rebuild from the decoded
    # path, whose bytes WSGI holds as latin-1.
    path = environ.get("PATH_INFO", "")[len(PREFIX) :]
    query = environ.get("QUERY_STRING", "")
    return quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


def request_headers(environ: dict[str, Any], endpoint: Endpoint) -> list[tuple[str, str]]:
    named_in_connection = {
        token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")
    }
    headers = [("Host", f"{endpoint.host}:{endpoint.port}")]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key == "CONTENT_TYPE" and value:
            name = "content-type"
        else:
            continue
        if name in DROP_REQUEST or name in named_in_connection or name.startswith("proxy-"):
            continue
        headers.append((name, value))
    headers.append(("Authorization", endpoint.authorization))
    return headers


def response_headers(response: ResponseHead) -> list[tuple[str, str]]:
    lowered = [(name.lower(), name, value) for name, value in response.headers]
    drop = DROP_RESPONSE.union(
        token.strip()
        for low, _, value in lowered
        if low == "connection"
        for token in value.lower().split(",")
    )
    return [
        (name, value)
        for low, name, value in lowered
        if low not in drop and not low.startswith("proxy-")
    ]


def status_line(response: ResponseHead) -> str:
    """OpenCode's status and reason phrase as it sent them (WSGI needs a phrase: supply the
    standard one when there was none)."""
    reason = response.reason
    if not reason:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
    return f"{response.status} {reason}"


def event_target(environ: dict[str, Any], base_path: str) -> str | None:
    """The canonical target (with the query as sent) when the request opens an event
    stream, else None (``manager.proxy.events``)."""
    path, mark, query = upstream_target(environ, "").partition("?")
    canonical = canonical_event_path(path)
    return None if canonical is None else base_path + canonical + mark + query


def is_event_stream(environ: dict[str, Any]) -> bool:
    return environ["REQUEST_METHOD"] == "GET" and event_target(environ, "") is not None


def too_many_streams(limit: int) -> ApiError:
    return ApiError(
        503,
        "too_many_streams",
        f"The Manager already holds {limit} event streams (its --max-streams"
        " limit); close a TUI or raise the limit.",
    )


def token_hash_of(environ: dict[str, Any]) -> str:
    return hash_token(presented_token(environ.get("HTTP_AUTHORIZATION")) or "")


def event_directory(environ: dict[str, Any]) -> str:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("directory"):
        return query["directory"][0]
    header = environ.get("HTTP_X_OPENCODE_DIRECTORY", "")
    return unquote(header) if header else ""


# -- responses ---------------------------------------------------------------------------


class AnswerCut(ClientDisconnected):
    """Raised from a response body to make waitress drop the connection unfinished: its
    ``ClientDisconnected`` is the one exception it answers that way, logged at INFO."""


class RelayBody:
    """The response body as a WSGI iterable; ``close()`` (called by waitress, even for HEAD,
    204 and 304 when the body never runs) frees the connection, the watch and the lease."""

    def __init__(
        self,
        proxy: Proxy,
        conn: Connection,
        response: UpstreamResponse,
        watch_key: int,
        on_close: Any = None,
    ) -> None:
        self.proxy = proxy
        self.conn = conn
        self.response = response
        self.watch_key = watch_key
        self.on_close = on_close
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        response = self.response
        try:
            while True:
                # read1 returns what has arrived (one SSE event at a time), never waits to
                # fill the buffer; the bytes are forwarded exactly as OpenCode encoded them.
                chunk = response.read1(BLOCK)
                if not chunk:
                    return
                yield chunk
        except (OSError, UpstreamError, ValueError) as exc:
            if self.conn.interrupted:
                return  # the watcher shut the socket because the client had gone
            # OpenCode ended its answer early. Ending the body quietly would let waitress
            # finish a chunked answer with its last chunk, so a cut answer would look whole.
            log.warning(
                "OpenCode ended an answer early (%s); closing the client's connection",
                exc.__class__.__name__,
            )
            raise AnswerCut from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.watcher.unwatch(self.watch_key)
        # Only a body read to its end leaves the connection in a state to be reused (waitress
        # stops iterating once Content-Length bytes went out, so "done" is the test).
        if self.response.done and not self.response.will_close:
            self.proxy.pool.put(self.conn)
        else:
            self.conn.close()
        if self.on_close is not None:
            self.on_close()


def small_body(method: str, length: int, stream: BinaryIO) -> bytes | None:
    """A body of at most ``SMALL_BODY`` bytes, read whole; None for a request without one
    (OpenCode still gets ``Content-Length: 0`` for an empty POST, PUT or PATCH)."""
    if length:
        return stream.read(length)
    return b"" if method in BODY_METHODS else None


def _forward(
    proxy: Proxy, environ: dict[str, Any], endpoint: Endpoint, target: str | None
) -> tuple[Connection, UpstreamResponse, int]:
    method = environ["REQUEST_METHOD"]
    if target is None:
        target = upstream_target(environ, endpoint.base_path)
    headers = request_headers(environ, endpoint)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream: BinaryIO = environ["wsgi.input"]
    body = stream if length > SMALL_BODY else small_body(method, length, stream)
    # An event stream's client never half-closes to wait for its answer: its end is
    # noticed at once. Any other client may (``client_gone_probe``).
    gone = client_gone_probe(environ, half_close=target is None)
    for attempt in (1, 2):
        conn = proxy.pool.get(endpoint)
        key = proxy.watcher.watch(gone, conn)
        try:
            return conn, conn.request(method, target, headers, body, length), key
        except (OSError, UpstreamError) as exc:
            proxy.watcher.unwatch(key)
            conn.close()
            # A pooled connection the server closed a moment ago: once more on a fresh one.
            if attempt == 1 and conn.reused and not hasattr(body, "read"):
                continue
            raise unreachable(exc.__class__.__name__) from None
    raise AssertionError("unreachable")


def unreachable(reason: str) -> ApiError:
    return ApiError(
        502,
        "opencode_unreachable",
        f"OpenCode did not answer the proxied request ({reason}); it may be restarting,"
        " try again in a few seconds.",
    )


def auth_failed() -> ApiError:
    # OpenCode refused the Manager's own credentials: a Manager configuration fault, not the
    # client's; passing the 401 on would make the client discard a good token.
    return ApiError(
        502,
        "opencode_auth_failed",
        "OpenCode rejected the Manager's credentials; check --opencode-password.",
    )


class Proxy:
    """The WSGI application for everything under ``PREFIX``, with the machinery its requests
    share: the connection pool to OpenCode and the disconnect watcher."""

    def __init__(self, services: Any) -> None:
        self.services = services
        settings = services.settings
        self.pool = Pool(settings.threads + settings.max_streams)
        self.watcher = DisconnectWatcher()
        # Open event streams, by key: the hash of the token each was opened with, and how to
        # end it (when that token is rotated away).
        self._streams: dict[int, tuple[str, Callable[[], None]]] = {}
        self._streams_lock = threading.Lock()
        self._stream_keys = itertools.count()

    def end_streams(self) -> None:
        """Cut every proxied request short (the Manager is shutting down)."""
        self.watcher.shutdown_all()

    def open_stream(self, environ: dict[str, Any]) -> Callable[[], None]:
        """Count an event stream for its directory's ``inUse`` and ``--max-streams``
        (503 when full); returns what ends the count, to be called once."""
        services = self.services
        directory = event_directory(environ)
        limit = services.settings.max_streams
        if not services.streams.acquire(directory, limit):
            raise too_many_streams(limit)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                services.streams.release(directory)

        return release

    def track_stream(self, environ: dict[str, Any], end: Callable[[], None]) -> int:
        """Remember how to end a stream, should its token be rotated; ``untrack`` after."""
        key = next(self._stream_keys)
        with self._streams_lock:
            self._streams[key] = (token_hash_of(environ), end)
        return key

    def untrack_stream(self, key: int) -> None:
        with self._streams_lock:
            self._streams.pop(key, None)

    def end_streams_of_other_tokens(self, current: str | None) -> None:
        """The token changed (``manager.token_watch``): end every stream opened with another."""
        with self._streams_lock:
            ends = [end for digest, end in self._streams.values() if digest != current]
        for end in ends:
            end()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self._relay(environ, start_response)
        except ApiError as exc:
            return self._error(environ, start_response, exc)
        except Exception:
            log.exception("unhandled error in the proxy")
            return self._error(
                environ,
                start_response,
                ApiError(
                    500, "internal_error", "The Manager hit an unexpected error; see its log."
                ),
            )

    @staticmethod
    def _error(environ: dict[str, Any], start_response: Any, exc: ApiError) -> list[bytes]:
        body = wsgi_error(start_response, exc)
        # Waitress sends whatever a HEAD answer yields: the head alone, as HTTP wants.
        return [] if environ["REQUEST_METHOD"] == "HEAD" else body

    def _relay(self, environ: dict[str, Any], start_response: Any) -> Any:
        services = self.services
        authorization = environ.get("HTTP_AUTHORIZATION")
        if not token_matches(services.registry, presented_token(authorization)):
            raise unauthorized()
        if environ.get("HTTP_UPGRADE"):
            raise ApiError(
                501,
                "websocket_unsupported",
                "The Manager's proxy does not carry WebSocket upgrades (such as OpenCode's"
                " terminal endpoints); everything else works through it.",
            )
        endpoint = self._endpoint()
        target = None
        release = None
        if environ["REQUEST_METHOD"] == "GET":
            target = event_target(environ, endpoint.base_path)
            if target is not None:
                release = self.open_stream(environ)
        try:
            conn, response, key = _forward(self, environ, endpoint, target)
        except BaseException:
            if release is not None:
                release()
            raise
        body = RelayBody(self, conn, response, key)
        if response.status == 401:
            body.close()
            raise auth_failed()
        if release is None and is_event_stream_type(response.headers):
            # A stream the path did not give away: counted now that it shows.
            try:
                release = self.open_stream(environ)
            except ApiError:
                body.close()
                raise
        if release is not None:
            body.on_close = self._stream_closer(environ, conn, release)
        start_response(status_line(response), response_headers(response))
        return body

    def _stream_closer(
        self, environ: dict[str, Any], conn: Connection, release: Callable[[], None]
    ) -> Callable[[], None]:
        key = self.track_stream(environ, conn.shutdown)

        def on_close() -> None:
            self.untrack_stream(key)
            release()

        return on_close

    def _endpoint(self) -> Endpoint:
        upstream = self.services.opencode
        if upstream is None or not upstream.configured:
            message = (
                upstream.describe()
                if upstream is not None
                else ("the Manager runs without OpenCode (--no-opencode)")
            )
            # Its state ("disabled", "unavailable") too: ocm says what to do for each.
            raise ApiError(
                503,
                "opencode_not_configured",
                f"No OpenCode server is available: {message}.",
                {"opencode": upstream.state if upstream is not None else DISABLED},
            )
        endpoint: Endpoint | None = upstream.wait_ready(READY_WAIT)
        if endpoint is None:
            raise ApiError(
                502,
                "opencode_unavailable",
                f"OpenCode is not answering ({upstream.state}); try again in a few seconds.",
            )
        return endpoint
