"""HTTP/1.1 to one Manager over the standard library's ``http.client``.

Kept-alive connections (a push is three requests on one), a connect timeout apart from the
read timeout, bodies streamed both ways, and the proxies the environment names
(``https_proxy``, ``http_proxy``, ``no_proxy``), as ``opencode attach`` honours them too.

Not ``requests``: importing it took ~0.15 s on every networked command, as long as a
one-file push spends in git, for a client that talks to one server in a few shapes. Every
failure to reach or hear the Manager is a :class:`Unreachable` with a few plain words.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import select
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from ocm.proxies import proxy_for

Body = bytes | Iterable[bytes] | None
# The most of an answer read whole (JSON: a list of repos, an error): no Manager's comes near
# it (10,000 repos are about 3 MB), and a server that is not a Manager may send without end.
MAX_WHOLE_ANSWER = 32 * 1024**2


class Unreachable(Exception):
    """The Manager could not be reached or stopped answering; ``reason`` says how. ``tls``:
    the TLS handshake failed (its certificate, most often); ``plain_http``: the server took
    the connection but did not answer TLS, as a plain-HTTP server given an https URL does.
    ``proxy``: the proxy the environment names failed (not the Manager), as ``(host:port,
    variable)``."""

    def __init__(
        self,
        reason: str,
        *,
        tls: bool = False,
        plain_http: bool = False,
        proxy: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tls = tls
        self.plain_http = plain_http
        self.proxy = proxy


class Response:
    """One answer; its body is read on demand. Close it to give the connection back."""

    def __init__(self, raw: http.client.HTTPResponse, done: Any) -> None:
        self._raw = raw
        self._done = done  # called once with whether the connection can be reused
        self.status_code = raw.status
        self.headers = raw.headers
        self._content: bytes | None = None

    def read(self) -> bytes:
        """The whole body, or its first ``MAX_WHOLE_ANSWER`` bytes and one more (read once,
        kept for the next call)."""
        if self._content is None:
            try:
                self._content = self._raw.read(MAX_WHOLE_ANSWER + 1)
                # read(amt) ends a short Content-Length body silently, as read1() does.
                if len(self._content) <= MAX_WHOLE_ANSWER and self._raw.length:
                    raise http.client.IncompleteRead(self._content)
            except (OSError, http.client.HTTPException) as exc:
                raise ConnectionError(_reason(exc)) from None
        return self._content

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not, is longer than any Manager's, or
        nests deeper than Python's stack)."""
        body = self.read()
        if len(body) > MAX_WHOLE_ANSWER:
            raise ValueError(f"an answer over {MAX_WHOLE_ANSWER} bytes")
        try:
            return json.loads(body)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None

    def iter_content(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes; a broken transfer is an OSError."""
        while True:
            try:
                chunk = self._raw.read1(size)
            except (OSError, http.client.HTTPException) as exc:
                raise ConnectionError(_reason(exc)) from None
            if not chunk:
                if self._raw.length:  # read1() ends a short Content-Length body silently
                    raise ConnectionError(_reason(http.client.IncompleteRead(b"")))
                return
            yield chunk

    def close(self) -> None:
        if self._done is not None:
            reusable = self._raw.isclosed() and not self._raw.will_close
            self._raw.close()
            self._done(reusable)
            self._done = None


class Transport:
    """Requests to one base URL, over connections kept for the next request."""

    def __init__(self, base_url: str, *, connect_timeout: float, user_agent: str) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.user_agent = user_agent
        self._proxy = proxy_for(parts.scheme, self.host)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._opening: threading.Thread | None = None
        self._open_failure: Unreachable | None = None

    def open_early(self) -> None:
        """Open the first connection on a thread of its own while the caller does other work:
        the TCP (and TLS) handshake then costs the first request no round trip. A failure
        is the first request's to report, as if it had connected itself."""
        self._opening = threading.Thread(target=self._open, name="ocm-connect", daemon=True)
        self._opening.start()

    def _open(self) -> None:
        try:
            conn = self._connect()
        except Unreachable as exc:
            self._open_failure = exc
            return
        with self._lock:
            self._idle.append(conn)

    def _opened(self) -> None:
        """Wait for :meth:`open_early`'s connection; raise what kept it from opening."""
        opening, self._opening = self._opening, None
        if opening is None:
            return
        opening.join()
        failure, self._open_failure = self._open_failure, None
        if failure is not None:
            raise failure

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None,
    ) -> Response:
        target = self.prefix + path
        query = {key: value for key, value in (params or {}).items() if value is not None}
        if query:
            target += "?" + urlencode(query, doseq=True)
        login: dict[str, str] = {}
        if self._proxy and not self.https:  # a plain proxy takes the whole URL, and its login
            target = f"http://{self.host}:{self.port}{target}"
            login = self._proxy_auth()
        # Through an https tunnel the proxy's login went with CONNECT: never to the Manager.
        all_headers = {"User-Agent": self.user_agent, **login, **(headers or {})}
        replayable = body is None or isinstance(body, bytes)
        while True:
            conn, reused = self._connection()
            try:
                return self._exchange(conn, method, target, body, all_headers, read_timeout)
            except _StaleConnection:
                conn.close()
                if not (reused and replayable):
                    raise Unreachable("connection closed before an answer") from None
            except Unreachable:
                conn.close()
                raise

    def close(self) -> None:
        try:  # noqa: SIM105 - nobody is left to tell why an unused connection failed
            self._opened()
        except Unreachable:
            pass
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ------------------------------------------------------------------ connections

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        self._opened()
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not _dropped(conn):
                    return conn, True
                conn.close()
        return self._connect(), False

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._proxy[:2] if self._proxy else (self.host, self.port)
        conn: http.client.HTTPConnection
        if self.https:
            import ssl  # noqa: PLC0415 - http.client imported it already (HTTPSConnection)

            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                host, port, timeout=self.connect_timeout, context=context
            )
            if self._proxy:
                conn.set_tunnel(self.host, self.port, headers=self._proxy_auth())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        try:
            # HTTPSConnection.connect() in its two steps: the TCP connection (and a proxy's
            # tunnel), then the TLS handshake. A server that took the connection but does
            # not speak TLS is then told apart from one that is not there.
            http.client.HTTPConnection.connect(conn)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            reason = _connect_reason(exc, self.connect_timeout)
            if self._proxy:  # the proxy is what could not be reached, or would not tunnel
                proxy = (f"{host}:{port}", self._proxy[3])
                raise Unreachable(_tunnel_reason(exc) or reason, proxy=proxy) from None
            raise Unreachable(reason) from None
        if self.https:
            try:
                conn.sock = context.wrap_socket(conn.sock, server_hostname=self.host)
            except OSError as exc:
                conn.close()
                raise _handshake_failure(exc) from None
        return conn

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable:
            with self._lock:
                self._idle.append(conn)
        else:
            conn.close()

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: Body,
        headers: Mapping[str, str],
        read_timeout: float | None,
    ) -> Response:
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout)
        sent_all = True
        try:
            conn.request(method, target, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The Manager may have answered early (a refused token, a full disk) and closed:
            # its answer is worth more than the broken pipe.
            sent_all = False
            failure: BaseException = exc
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(_reason(exc)) from None
        try:
            raw = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            raise _StaleConnection from (exc if sent_all else failure)
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(_reason(exc if sent_all else failure)) from None
        return Response(raw, lambda reusable: self._give_back(conn, reusable and sent_all))

    def _proxy_auth(self) -> dict[str, str]:
        if not self._proxy or not self._proxy[2]:
            return {}
        return {"Proxy-Authorization": "Basic " + base64.b64encode(self._proxy[2]).decode()}


class _StaleConnection(Exception):
    """A kept-alive connection the Manager had closed: a request that can be sent again is."""


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the other side (it reads as ready: EOF)."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _tunnel_reason(exc: BaseException) -> str | None:
    """The proxy's answer when it took the connection but refused the CONNECT tunnel
    (``http.client`` says "Tunnel connection failed: 403 Forbidden")."""
    text = str(exc)
    if isinstance(exc, OSError) and text.startswith("Tunnel connection failed: "):
        return f"it refused to connect to the Manager: {text.split(': ', 1)[1]}"
    return None


def _connect_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, socket.timeout):
        return f"no connection within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return _reason(exc)


def _handshake_failure(exc: OSError) -> Unreachable:
    """Why a TLS handshake failed on a connection the server had taken."""
    from ocm import tls  # noqa: PLC0415 - ssl, imported already by the handshake

    kind = tls.handshake_failure(exc)
    if kind is None:
        return Unreachable(_reason(exc))
    return Unreachable(kind, tls=kind == tls.CERTIFICATE, plain_http=kind == tls.PLAIN_HTTP)


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.EPIPE: "connection closed before an answer",
}


def _reason(exc: BaseException) -> str:
    """A few words on why a connection failed."""
    if isinstance(exc, socket.timeout):
        return "it stopped answering"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed before an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed in the middle of the answer"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return exc.__class__.__name__
