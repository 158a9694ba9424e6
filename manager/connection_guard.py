"""What waitress lets in and how long it keeps it: the Manager's guard against clients that
have no credentials, send nothing, or stop reading.

Both listeners are guarded, each with its own credentials (``Credentials``): the main one
with the Manager token (``ManagerToken``), OpenCode's web app with the console's sign-in
cookie (``SignInCookie``). They share waitress' loop, threads and connection limit, so they
also share the upload budget, and making room at the limit looks at both.

Left alone, waitress reads a whole request body (to temp files) before the application sees
the request, keeps a silent connection for two minutes (and for good while it trickles a
byte now and then), stops accepting at its connection limit, and lets a worker wait forever
for a client that stopped reading its answer (FIELD-NOTES "Waitress as a streaming proxy").
So, on the event loop, before any body is read:

- a request whose body is larger than ``UNCHECKED_BODY`` (or chunked) and that does not
  carry its listener's credentials is answered 401 as soon as its head is complete, and its
  connection closes without reading the body; small bodies (a sign-in form) are still read
  and left to the application to judge;
- request bodies being received share ``upload_budget`` bytes; past it, 503;
- a raw control character (TAB, NUL, DEL...) in the request target is a 400, never forwarded;
- a TLS handshake where a request head should be (an ``https://`` URL for this plain-HTTP
  listener) is a 400 at once, rather than a silence the client takes for a dead server;
- a connection that has not shown its credentials gets ``head_timeout`` seconds to send
  each request head (and a head may never take longer than that, credentials or not);
- at the connection limit, the connections (of either listener) that have not shown their
  credentials, idle longest first, make room: clients with credentials keep their place;
- an answer that made no progress for ``stall_timeout`` seconds while bytes wait for the
  client is cut, which frees its worker and lets the application close its body (a pull's
  repo lock).

This leans on waitress internals (its channel, parser, ``maintenance`` and ``readable``),
like ``manager.proxy.loop``: ``install`` checks that they are there, and leaves waitress as it
is (with a warning) when they are not. Whether a request carries the token or a live sign-in
is read from the ``TokenWatch``'s memory (no SQLite on the event loop); the application
checks it again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.utilities import Error, RequestEntityTooLarge

from manager.auth import unauthorized
from manager.errors import ApiError
from manager.token_watch import TokenWatch
from manager.tokens import presented_token
from manager.web.signin import session_digest

log = logging.getLogger("manager.server")

UNCHECKED_BODY = 64 * 1024
# Raw bytes no request target may hold (RFC 9112 §3.2): forwarded, they split or confuse
# the request line at OpenCode.
RAW_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# How many connections beyond the limit to free at once, so that a burst of new clients
# does not make the event loop look for room at every connection.
ROOM = 32
# A TLS handshake record: content type 22, then the major version 3 of every SSL/TLS.
# No HTTP method starts with byte 0x16, so these two bytes are never the start of a request.
TLS_HANDSHAKE = b"\x16\x03"
WARN_EVERY = 60.0  # a flood of connections is worth one log line a minute, not thousands
PARSER_HOOKS = (
    "received",
    "close",
    "headers_finished",
    "completed",
    "body_bytes_received",
    "header_plus",
    "parse_header",
)
CHANNEL_HOOKS = ("received", "handle_close", "parser_class", "last_activity", "will_close")
SERVER_HOOKS = ("maintenance", "readable", "active_channels", "_map", "channel_class", "adj")


class Refusal(Error):  # type: ignore[misc]
    """An answer waitress gives itself (its ``ErrorTask``, which closes the connection), in
    the Manager's JSON error shape; no body for HEAD."""

    def __init__(self, error: ApiError, head: bool) -> None:
        super().__init__(error.message)
        self.code = error.status
        self.reason = HTTPStatus(error.status).phrase
        self.error = error
        self.head = head

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        body = (
            b""
            if self.head
            else json.dumps({"error": self.error.code, "message": self.error.message}).encode()
        )
        return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body


class Credentials(Protocol):
    """What a listener's clients show to be trusted, read from a request head on the loop."""

    def shown(self, headers: dict[str, str]) -> str | None:
        """A key for the credentials these headers carry, when they are good now."""

    def still_good(self, key: str | None) -> bool:
        """Whether credentials shown earlier (``key``) are still good (no rotation, sign-out)."""

    def refusal(self) -> ApiError:
        """The 401 for a large body without them."""


class ManagerToken:
    """The main listener's: ``Authorization: Bearer <token>`` (or Basic, the token as password)."""

    def __init__(self, tokens: TokenWatch) -> None:
        self.tokens = tokens

    def shown(self, headers: dict[str, str]) -> str | None:
        if self.tokens.matches(presented_token(headers.get("AUTHORIZATION"))):
            return self.tokens.current
        return None

    def still_good(self, key: str | None) -> bool:
        stored = self.tokens.current
        return stored is not None and key == stored

    def refusal(self) -> ApiError:
        return unauthorized()


class SignInCookie:
    """OpenCode's web app's: the console's sign-in cookie, naming a sign-in that was made
    with the current token and has not expired or been signed out. The token itself is no
    credential there: the app is for browsers, and the application would refuse it anyway."""

    def __init__(self, tokens: TokenWatch, cookie_name: str) -> None:
        self.tokens = tokens
        self.cookie_name = cookie_name

    def shown(self, headers: dict[str, str]) -> str | None:
        digest = session_digest(headers.get("COOKIE"), self.cookie_name)
        return digest if self.tokens.signed_in(digest) else None

    def still_good(self, key: str | None) -> bool:
        return self.tokens.signed_in(key)

    def refusal(self) -> ApiError:
        from manager.web.opencode_app.relay import not_signed_in

        return not_signed_in()


class UploadBudget:
    """Request body bytes announced or received by requests not yet closed, on every
    listener, and the most there may be at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.uploading = 0

    def reserve(self, count: int) -> bool:
        with self._lock:
            if self.uploading + count > self.limit:
                return False
            self.uploading += count
            return True

    def release(self, count: int) -> None:
        if count:
            with self._lock:
                self.uploading -= count


class Guard:
    """The settings and the shared state (the upload budget) of one listener's connections."""

    def __init__(
        self,
        credentials: Credentials,
        budget: UploadBudget,
        *,
        head_timeout: float,
        stall_timeout: float,
    ) -> None:
        self.credentials = credentials
        self.budget = budget
        self.head_timeout = head_timeout
        self.stall_timeout = stall_timeout
        self.evicted = 0
        self.warned_at = -WARN_EVERY

    def reserve(self, count: int) -> bool:
        return self.budget.reserve(count)

    def release(self, count: int) -> None:
        self.budget.release(count)

    def trusted(self, channel: Any) -> bool:
        return self.credentials.still_good(getattr(channel, "credentials", None))

    # -- the server's periodic sweep and its connection limit ------------------------------

    def sweep(self, server: Any, now: float) -> None:
        """Close silent and stalled connections (waitress' ``maintenance``, on the loop)."""
        head_cutoff = now - self.head_timeout
        stall_cutoff = now - self.stall_timeout
        silent: list[Any] = []
        stalled: list[Any] = []
        for channel in list(server.active_channels.values()):
            if channel.will_close:
                continue
            if channel.requests:
                # An answer is under way: cut only when bytes wait and none went out lately.
                if channel.total_outbufs_len and channel.last_activity < stall_cutoff:
                    stalled.append(channel)
                continue
            partial = channel.request
            if partial is not None and not partial.headers_finished:
                if getattr(partial, "begun", now) < head_cutoff:
                    silent.append(channel)
            elif (
                partial is None
                and channel.last_activity < head_cutoff
                and not self.trusted(channel)
            ):
                silent.append(channel)
        for channel in silent:
            channel.will_close = True  # waitress closes it at the loop's next turn
        for channel in stalled:
            log.warning(
                "cut an answer to %s: the client read nothing for %g s",
                _peer(channel),
                self.stall_timeout,
            )
            # Its socket is not writable, so will_close would never be acted on: close now.
            # The worker waiting to write wakes, sees the client gone, and closes its body.
            channel.handle_close()
        if silent or stalled:
            server.pull_trigger()

    def make_room(self, server: Any, limit: int) -> None:
        """At the connection limit, close the longest-idle connections that have not shown
        their credentials and are not being answered, whichever listener took them: the
        listeners share the socket map, and so the limit."""
        excess = len(server._map) - limit + ROOM
        idle = sorted(
            (
                channel
                for channel in list(server._map.values())
                if isinstance(channel, GuardedChannel)
                and not channel.requests
                and not channel.will_close
                and not channel.guard.trusted(channel)
            ),
            key=lambda channel: channel.last_activity,
        )
        victims = idle[:excess]
        for channel in victims:
            channel.handle_close()
        self.evicted += len(victims)
        if victims and time.monotonic() - self.warned_at > WARN_EVERY:
            self.warned_at = time.monotonic()
            log.warning(
                "at the connection limit (%d): closed %d idle connections that had not"
                " shown the token or a sign-in so far",
                limit,
                self.evicted,
            )


def _peer(channel: Any) -> str:
    addr = getattr(channel, "addr", None)
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else "a client"


class GuardedParser(HTTPRequestParser):  # type: ignore[misc]
    """Waitress' request parser, with a decision as soon as the head is complete."""

    # Waitress' own attributes (it has no type information), as this class sets them.
    completed: bool
    error: Error | None

    def __init__(self, adj: Any, *, guard: Guard, channel: Any) -> None:
        super().__init__(adj)
        self.guard = guard
        self.channel = channel
        self.begun = time.time()
        self.counted = 0  # bytes of the upload budget this request holds

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        in_head = not self.headers_finished
        if in_head and len(self.header_plus) < len(TLS_HANDSHAKE):
            start = self.header_plus + data[: len(TLS_HANDSHAKE)]
            if start.startswith(TLS_HANDSHAKE):
                # The client waits for the server's half of the handshake, which never
                # comes: answering in plain text makes its TLS library fail at once
                # (WRONG_VERSION_NUMBER), and says why to anyone who reads the bytes. The
                # answer needs a request line: waitress' own for a head it cannot parse.
                self.parse_header(b"GET / HTTP/1.0\r\n")
                return self._refuse(_tls_to_plain_http(), len(data))
        before = self.body_bytes_received
        consumed: int = super().received(data)
        if isinstance(self.error, RequestEntityTooLarge):  # waitress' answer is plain text
            self.error = Refusal(_too_large(self.adj.max_request_body_size), self.command == "HEAD")
            return consumed
        if in_head:
            if self.headers_finished and self.error is None:
                refusal = self._admit()
                if refusal is not None:
                    return self._refuse(refusal, len(data))
        elif self.chunked and not self.completed:
            grown = self.body_bytes_received - before
            if grown and not self.guard.reserve(grown):
                return self._refuse(_too_busy(), len(data))
            self.counted += grown
        return consumed

    def _admit(self) -> ApiError | None:
        """The request's head is in and its body is not: go on reading it, or refuse."""
        if RAW_CONTROL.search(self.request_uri):
            return _bad_target()
        body_to_come = not self.completed
        guard = self.guard
        # A connection that showed its credentials keeps its place (``make_room``); asking
        # again for every request on it would be work on every proxied call for nothing.
        if body_to_come or not guard.trusted(self.channel):
            shown = guard.credentials.shown(self.headers)
            if shown is not None:
                self.channel.credentials = shown
            elif body_to_come and (self.chunked or self.content_length > UNCHECKED_BODY):
                return guard.credentials.refusal()
        if body_to_come and not self.chunked:
            if not guard.reserve(self.content_length):
                return _too_busy()
            self.counted = self.content_length
        return None

    def _refuse(self, error: ApiError, consumed: int) -> int:
        # Completed with an error: waitress answers it itself (ErrorTask) and closes. What
        # is left of this read (part of the body) is swallowed rather than parsed as the
        # next request; the channel reads no more while the answer goes out.
        self.error = Refusal(error, self.command == "HEAD")
        self.completed = True
        self.expect_continue = False  # no "100 Continue" for a body that is not wanted
        self.guard.release(self.counted)
        self.counted = 0
        return consumed

    def close(self) -> None:
        self.guard.release(self.counted)
        self.counted = 0
        super().close()


def _bad_target() -> ApiError:
    return ApiError(
        400,
        "bad_request",
        "The request target holds a raw control character or space; percent-encode it.",
    )


def _tls_to_plain_http() -> ApiError:
    return ApiError(
        400,
        "plain_http",
        "This port serves plain HTTP, not TLS: use an http:// URL for it.",
    )


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"The request body is larger than this Manager accepts ({limit} bytes,"
        " --max-upload-bytes).",
    )


def _too_busy() -> ApiError:
    return ApiError(
        503,
        "uploads_busy",
        "The Manager is receiving as many upload bytes as it allows at once; try again"
        " in a moment.",
    )


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    """Waitress' channel (one client connection), whose requests are parsed by
    ``GuardedParser`` and which remembers the credentials it showed (``Credentials``)."""

    credentials: str | None = None

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def parser_class(self, adj: Any) -> GuardedParser:  # type: ignore[override]
        return GuardedParser(adj, guard=self.guard, channel=self)

    def handle_close(self) -> None:
        partial: GuardedParser | None = getattr(self, "request", None)
        if partial is not None:  # an upload cut off mid-body gives its budget back
            self.request = None
            partial.close()
        super().handle_close()


def install(
    server: Any, credentials: Credentials, settings: Any, budget: UploadBudget | None = None
) -> Guard | None:
    """Guard every connection ``server`` accepts from now on; its guard, or None when
    waitress lacks what it needs. Listeners that share a loop share ``budget``."""
    if not (
        all(hasattr(server, name) for name in SERVER_HOOKS)
        and all(hasattr(HTTPChannel, name) for name in CHANNEL_HOOKS)
        and all(hasattr(HTTPRequestParser, name) for name in PARSER_HOOKS)
        and callable(getattr(server, "pull_trigger", None))
    ):
        log.warning(
            "waitress lacks what the connection guard needs: unauthenticated uploads,"
            " silent and stalled connections are not limited"
        )
        return None
    guard = Guard(
        credentials,
        budget or UploadBudget(upload_budget(settings)),
        head_timeout=settings.head_timeout,
        stall_timeout=settings.stall_timeout,
    )

    def make_channel(*args: Any, **kwargs: Any) -> GuardedChannel:
        return GuardedChannel(*args, guard=guard, **kwargs)

    server.channel_class = make_channel
    limit = server.adj.connection_limit
    waitress_maintenance: Callable[[float], None] = server.maintenance
    waitress_readable: Callable[[], bool] = server.readable

    def maintenance(now: float) -> None:
        waitress_maintenance(now)
        guard.sweep(server, now)

    def readable() -> bool:
        if server.accepting and len(server._map) >= limit:
            guard.make_room(server, limit)
        return waitress_readable()

    server.maintenance = maintenance
    server.readable = readable
    server.guard = guard
    return guard


def upload_budget(settings: Any) -> int:
    """Two of the largest pushes at once: more than that is a flood, not a team."""
    return int(2 * settings.max_upload_bytes)
