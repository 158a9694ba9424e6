"""Ordinary proxied requests relayed on waitress' own event loop, without a worker thread.

Waitress runs every request on a worker: its socket thread parses the request and wakes a
worker, which answers and wakes the socket thread again. For the small JSON calls a TUI makes
all the time, those hand-offs are CPU and delay taken from OpenCode, which wants every core
of a small VM (bench/proxy.py). So the socket thread relays them itself, the way nginx does:
it writes the request to OpenCode on a non-blocking keep-alive connection that lives in
waitress' own socket map, and passes the answer on as it arrives.

Only a request that needs nothing else takes this path: authorised, not an event stream
(those hold a worker for their whole life, by design), no WebSocket upgrade, a body small
enough that waitress already holds it, not HEAD, OpenCode running and reachable over plain
HTTP. Every other request goes to a worker and ``manager.proxy.wsgi`` as before; that is also
where 401, 501 and 503 are answered. Target, headers and status pass through the same
functions on both paths.

This leans on waitress internals: a channel's ``requests`` and its lock, ``WSGITask`` to
write the response, the server's ``add_task`` and socket map. ``install`` checks that they
are there and leaves waitress as it is when they are not.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.channel import ClientDisconnected
from waitress.task import WSGITask

from manager.errors import ApiError, wsgi_error
from manager.opencode import Endpoint
from manager.proxy.events import is_event_stream_type
from manager.proxy.upstream import (
    BLOCK,
    BodyDecoder,
    ResponseHead,
    UpstreamError,
    client_gone_probe,
    request_head,
)
from manager.proxy.wsgi import (
    PREFIX,
    SMALL_BODY,
    Proxy,
    auth_failed,
    is_event_stream,
    is_proxy_path,
    request_headers,
    response_headers,
    small_body,
    status_line,
    unreachable,
    upstream_target,
)
from manager.tokens import presented_token, token_matches

log = logging.getLogger("manager.proxy")

RELAYED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Stop reading OpenCode's answer while this much of it waits for a slow client: waitress
# makes a writer wait above 16 MB queued, and here the writer is the event loop itself.
CLIENT_BACKLOG = 1024 * 1024
MAX_HEAD = 256 * 1024
MAX_IDLE = 32
CHANNEL_ATTRIBUTES = (
    "requests",
    "requests_lock",
    "current_outbuf_count",
    "total_outbufs_len",
    "send_continue",
    "sent_continue",
)


def install(server: Any, proxy: Proxy) -> bool:
    """Send the requests this module can relay to it instead of to waitress' workers."""
    if not (
        callable(getattr(server, "add_task", None))
        and isinstance(getattr(server, "_map", None), dict)
    ):
        _warn_unusable()
        return False
    server.add_task = LoopRelay(server, proxy).add_task
    return True


def _warn_unusable() -> None:
    log.warning("waitress lacks what the event-loop relay needs; workers relay everything")


class LoopRelay:
    """Decides, per request, between the event loop and a worker (waitress' ``add_task``)."""

    def __init__(self, server: Any, proxy: Proxy) -> None:
        self.server = server
        self.proxy = proxy
        self.to_worker = server.add_task
        self.idle: list[UpstreamConnection] = []
        self.usable: bool | None = None  # known at the first request: channels are made then
        self.loop_thread = threading.get_ident()  # install() runs where the loop will

    def add_task(self, channel: Any) -> None:
        # Waitress calls this on its socket thread holding the channel's requests_lock, so
        # nothing here may answer the request: that happens in later event-loop callbacks.
        # A worker calls it too, for a pipelined request behind the one it served; the
        # event loop's sockets are not to be touched from there.
        if threading.get_ident() != self.loop_thread:
            self.to_worker(channel)
            return
        if self.usable is None:
            self.usable = all(hasattr(channel, name) for name in CHANNEL_ATTRIBUTES)
            if not self.usable:
                _warn_unusable()
        if not self.usable:
            self.to_worker(channel)
            return
        try:
            exchange = self._exchange_for(channel, channel.requests[0])
            started = exchange is not None and exchange.start()
        except Exception:
            log.exception("the event-loop relay could not take a request; a worker will")
            started = False
        if not started:
            self.to_worker(channel)

    def _exchange_for(self, channel: Any, request: Any) -> Exchange | None:
        if (
            request.error is not None
            or request.command not in RELAYED_METHODS
            or not request.path.startswith(PREFIX)
            or request.chunked
            or request.content_length > SMALL_BODY
        ):
            return None
        environ = WSGITask(channel, request).get_environment()
        if (
            not is_proxy_path(environ["PATH_INFO"])
            or environ.get("HTTP_UPGRADE")
            or is_event_stream(environ)
        ):
            return None
        services = self.proxy.services
        # One SQLite read; in WAL mode it never waits for a writer, so the loop never stalls.
        if not token_matches(services.registry, presented_token(environ.get("HTTP_AUTHORIZATION"))):
            return None
        upstream = services.opencode
        if upstream is None or not upstream.configured:
            return None
        endpoint = upstream.wait_ready(0)
        if endpoint is None or endpoint.scheme != "http":
            return None
        return Exchange(self, channel, request, environ, endpoint)

    def connection(self, endpoint: Endpoint, fresh: bool) -> UpstreamConnection:
        while self.idle and not fresh:
            conn = self.idle.pop()
            if conn.endpoint == endpoint and conn.open:
                conn.reused = True
                return conn
            conn.close()
        return UpstreamConnection(self, endpoint)

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        conn.exchange = None
        if reusable and conn.open and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn.close()


class Exchange:
    """One request relayed on the event loop: sent to OpenCode, its answer passed on."""

    def __init__(
        self,
        relay: LoopRelay,
        channel: Any,
        request: Any,
        environ: dict[str, Any],
        endpoint: Endpoint,
    ) -> None:
        self.relay = relay
        self.channel = channel
        self.request = request
        self.endpoint = endpoint
        method = request.command
        stream = request.get_body_stream()
        body = small_body(method, request.content_length, stream)
        stream.seek(0)  # a worker may still have to read it
        target = upstream_target(environ, endpoint.base_path)
        headers = request_headers(environ, endpoint)
        head = request_head(method, target, headers, None if body is None else len(body))
        self.payload = head + body if body else head
        self.gone = client_gone_probe(environ)
        self.lock = threading.Lock()  # self.conn, against the disconnect watcher's thread
        self.conn: UpstreamConnection | None = None
        self.client_gone = False
        self.retried = False
        self.head: ResponseHead | None = None
        self.body: BodyDecoder | None = None
        self.task: Any = None  # waitress' WSGITask, once the answer has begun
        self.watch_key = -1
        self.ended = False
        self.environ = environ
        self.end_stream: Any = None  # set when the answer turns out to be an event stream

    def start(self) -> bool:
        """Send the request; False (and nothing sent) when OpenCode cannot be reached now."""
        try:
            conn = self.relay.connection(self.endpoint, fresh=False)
        except OSError:
            return False
        self.watch_key = self.relay.proxy.watcher.watch(self.gone, self)
        self._send_on(conn)
        return True

    def _send_on(self, conn: UpstreamConnection) -> None:
        with self.lock:
            self.conn = conn
        conn.send(self.payload, self)

    def client_backlog(self) -> int:
        return int(self.channel.total_outbufs_len)

    def shutdown(self) -> None:
        """The client hung up (the disconnect watcher's thread): stop waiting for OpenCode."""
        with self.lock:
            self.client_gone = True
            if self.conn is not None:
                self.conn.shutdown()

    # -- from the upstream connection, on the event loop -----------------------------------

    def received(self, buffer: bytearray) -> None:
        try:
            if self.head is None and not self._begin_answer(buffer):
                return
            assert self.body is not None
            content = self.body.feed(buffer)
            if content:
                self._write(content)
            if self.body.done:
                assert self.head is not None
                self._finish(reusable=not self.head.will_close and not buffer)
        except UpstreamError as exc:
            self._fail(exc.__class__.__name__)
        except ApiError as exc:
            self._answer_error(exc)
        except ClientDisconnected:
            self._abort()

    def upstream_ended(self, conn: UpstreamConnection) -> None:
        if self.ended or conn is not self.conn:
            return
        if self.client_gone:
            self._abort()
        elif self.body is not None and self.body.until_close:
            self.body.done = True
            self._finish(reusable=False)
        elif self.head is None and conn.reused and not conn.incoming and not self.retried:
            # A pooled connection that OpenCode closed a moment ago: once more, on a new one.
            self.retried = True
            try:
                self._send_on(self.relay.connection(self.endpoint, fresh=True))
            except OSError as exc:
                self._fail(exc.__class__.__name__)
        else:
            self._fail("ConnectionClosed")

    # -- answering the client ---------------------------------------------------------------

    def _begin_answer(self, buffer: bytearray) -> bool:
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise UpstreamError("response head too long")
                return False
            head = ResponseHead(io.BytesIO(bytes(buffer[: end + 4])), self.request.command)
            del buffer[: end + 4]
            if not head.interim:
                break
        if head.status == 401:
            self._answer_error(auth_failed())
            return False
        if is_event_stream_type(head.headers):
            self._count_stream()
        self.head = head
        self.body = BodyDecoder(head)
        self._start_response(status_line(head), response_headers(head))
        return True

    def _count_stream(self) -> None:
        """An answer that streams although its path did not say so: it counts like any
        event stream from now on (503 when ``--max-streams`` are open)."""
        proxy = self.relay.proxy
        release = proxy.open_stream(self.environ)  # ApiError: answered by the caller
        key = proxy.track_stream(self.environ, self.shutdown)

        def end_stream() -> None:
            proxy.untrack_stream(key)
            release()

        self.end_stream = end_stream

    def _start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        # What WSGITask's own start_response does, for headers the proxy already filtered.
        task = WSGITask(self.channel, self.request)
        task.start()
        task.status = status
        task.response_headers = list(headers)
        task.complete = True
        for name, value in headers:
            if name.lower() == "content-length":
                task.content_length = int(value.split(",")[0])
        self.task = task

    def _write(self, content: bytes) -> None:
        task = self.task
        if task.wrote_header or task.content_length is None or not task.has_body:
            task.write(content)
            return
        # The head and the start of a body of known length go out in one send, so that the
        # client wakes once for them, not twice (what WSGITask.write does, in one piece).
        content = content[: task.content_length]
        head = task.build_response_header()
        task.wrote_header = True
        task.content_bytes_written += len(content)
        self.channel.write_soon(head + content)

    def _answer_error(self, error: ApiError) -> None:
        self._release_upstream(reusable=False)
        try:
            for content in wsgi_error(self._start_response, error):
                self._write(content)
        except ClientDisconnected:
            self._abort()
            return
        self._finish(reusable=False)

    def _fail(self, reason: str) -> None:
        if self.task is None:
            self._answer_error(unreachable(reason))
        else:
            self._abort()

    def _finish(self, reusable: bool) -> None:
        self._release_upstream(reusable)
        try:
            self.task.finish()
            close = bool(self.task.close_on_finish)
        except ClientDisconnected:
            close = True
        self._complete(close)

    def _abort(self) -> None:
        """The answer was cut short or its client left: close the client's connection
        after what it already has (no last chunk, so a cut answer never looks whole)."""
        self._release_upstream(reusable=False)
        self._complete(close=True)

    def _release_upstream(self, reusable: bool) -> None:
        with self.lock:
            conn, self.conn = self.conn, None
        self.relay.proxy.watcher.unwatch(self.watch_key)
        if conn is not None:
            self.relay.release(conn, reusable)

    def _complete(self, close: bool) -> None:
        """What waitress' channel does after a worker served a request."""
        if self.ended:
            return
        self.ended = True
        if self.end_stream is not None:
            self.end_stream()
        channel = self.channel
        with channel.requests_lock:
            if close:
                channel.close_when_flushed = True
                for request in channel.requests:
                    request.close()
                channel.requests = []
            else:
                # Waitress starts each request's answer in a new buffer: old ones can go.
                if channel.current_outbuf_count > 0:
                    channel.current_outbuf_count = channel.adj.outbuf_high_watermark
                self.request.close()
                channel.requests.pop(0)
                if channel.connected and channel.requests:
                    channel.server.add_task(channel)
                elif (
                    channel.connected
                    and channel.request is not None
                    and channel.request.expect_continue
                    and channel.request.headers_finished
                    and not channel.sent_continue
                ):
                    # A request behind this one waits for "100 Continue", which waitress
                    # held back while this answer went out (as its own ``service`` does).
                    channel.send_continue()
        channel.last_activity = time.time()


class UpstreamConnection:
    """One non-blocking keep-alive connection to OpenCode, polled by waitress' event loop."""

    def __init__(self, relay: LoopRelay, endpoint: Endpoint) -> None:
        self.relay = relay
        self.endpoint = endpoint
        self.exchange: Exchange | None = None
        self.reused = False
        self.outgoing = b""
        self.incoming = bytearray()
        family, kind, proto, _, address = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = sock.connect_ex(address)
        if result not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            raise ConnectionRefusedError(result, "cannot connect to OpenCode")
        self.dispatcher = _Dispatcher(self, relay.server._map, sock)
        self.dispatcher.connected = result == 0
        self.dispatcher.connecting = result != 0

    @property
    def open(self) -> bool:
        return self.dispatcher.socket is not None and bool(self.dispatcher.connected)

    def send(self, payload: bytes, exchange: Exchange) -> None:
        self.exchange = exchange
        self.incoming.clear()
        self.outgoing = payload
        if self.dispatcher.connected:
            # Usually the whole request goes at once; the event loop sends what does not.
            # An error shows at the loop's next poll, outside waitress' locks.
            with contextlib.suppress(OSError):
                self.outgoing = payload[self.dispatcher.socket.send(payload) :]

    def shutdown(self) -> None:
        sock = self.dispatcher.socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.dispatcher.close()

    # -- the event loop's callbacks ---------------------------------------------------------

    def readable(self) -> bool:
        exchange = self.exchange
        return exchange is None or exchange.client_backlog() < CLIENT_BACKLOG

    def writable(self) -> bool:
        return bool(self.outgoing) or bool(self.dispatcher.connecting)

    def on_writable(self) -> None:
        if self.outgoing:
            sent = self.dispatcher.send(self.outgoing)  # 0 when it would block, or closed
            self.outgoing = self.outgoing[sent:]

    def on_readable(self) -> None:
        data = self.dispatcher.recv(BLOCK)  # b"" once the connection ended (on_closed ran)
        if not data:
            return
        exchange = self.exchange
        if exchange is None:  # an idle connection that talks is not to be trusted
            self.on_closed()
            return
        self.incoming += data
        exchange.received(self.incoming)

    def on_closed(self) -> None:
        exchange, self.exchange = self.exchange, None
        with contextlib.suppress(ValueError):
            self.relay.idle.remove(self)
        self.close()
        if exchange is not None:
            exchange.upstream_ended(self)


class _Dispatcher(wasyncore.dispatcher):  # type: ignore[misc]
    """The connection's presence in waitress' socket map."""

    def __init__(self, owner: UpstreamConnection, socket_map: dict[int, Any], sock: socket.socket):
        super().__init__(map=socket_map)
        self.owner = owner
        self.set_socket(sock)

    def readable(self) -> bool:
        return self.owner.readable()

    def writable(self) -> bool:
        return self.owner.writable()

    def handle_connect(self) -> None:
        pass

    def handle_write(self) -> None:
        self.owner.on_writable()

    def handle_read(self) -> None:
        self.owner.on_readable()

    def handle_close(self) -> None:
        self.owner.on_closed()

    def handle_error(self) -> None:
        log.debug("connection to OpenCode failed", exc_info=True)
        self.owner.on_closed()
