"""``ocm status``'s one network call: is the Manager answering ``GET /api/health`` right now?

Kept apart from :mod:`ocm.api` on purpose: ``ocm status`` must start fast, and one HTTP/1.0
request needs no ``http.client``. This is a plain request over a socket with short timeouts.
``/api/health`` needs no token; given one, it also says whether that token is the current one
(as ``gh auth status`` checks its token): the token goes where every other command sends it,
in the ``Authorization`` header, and over TLS only once the handshake has verified the Manager.
"""

from __future__ import annotations

import base64
import json
import socket

from ocm.proxies import proxy_for

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
MAX_ANSWER = 65536


class Health:
    """The outcome of one probe: reachable or not, and what the Manager said."""

    __slots__ = ("reachable", "reason", "opencode_state", "version", "proxy", "token")

    def __init__(
        self,
        reachable: bool,
        reason: str | None = None,
        opencode_state: str | None = None,
        version: str | None = None,
    ) -> None:
        self.reachable = reachable
        self.reason = reason  # why not reachable, in a few words
        self.opencode_state = opencode_state
        self.version = version
        self.proxy: tuple[str, str] | None = None  # (host:port, variable) it went through
        self.token: str | None = None  # "accepted", "rejected", or None: not asked or not said

    def to_json(self) -> dict[str, object]:
        return {
            "reachable": self.reachable,
            "reason": self.reason,
            "opencode": self.opencode_state,
            "version": self.version,
            "proxy": f"{self.proxy[0]} (from {self.proxy[1]})" if self.proxy else None,
            "token": self.token,
        }


def _split(url: str) -> tuple[str, str, int, str]:
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, port = hostport, 443 if scheme == "https" else 80
    if hostport.startswith("["):  # [::1]:5003
        host, _, tail = hostport[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif ":" in hostport:
        host, _, text = hostport.rpartition(":")
        port = int(text)
    return scheme, host, port, "/" + path if path else ""


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds a whole response by its Content-Length: a proxy may keep the
    connection open after it."""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False


def host_of(url: str) -> str:
    """The host of a Manager URL, as ``no_proxy`` would name it."""
    return _split(url)[1]


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout):
        return "no answer within a few seconds"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or exc.__class__.__name__


def check(url: str, token: str | None = None) -> Health:
    """Probe ``<url>/api/health``, through the proxy the environment names as every other
    command would, with ``token`` (one that passed ``TokenSource.checked``: nothing in it
    can end a header line) when given; never raises."""
    try:
        scheme, host, port, prefix = _split(url)
    except ValueError:
        return Health(False, "the URL has an invalid port")
    proxy = proxy_for(scheme, host)
    health = _check(scheme, host, port, prefix, proxy, token)
    if proxy:
        health.proxy = (f"{proxy[0]}:{proxy[1]}", proxy[3])
    return health


def _check(
    scheme: str,
    host: str,
    port: int,
    prefix: str,
    proxy: tuple[str, int, bytes, str] | None,
    token: str | None,
) -> Health:
    login = b""
    if proxy and proxy[2]:
        login = b"Proxy-Authorization: Basic " + base64.b64encode(proxy[2]) + b"\r\n"
    try:
        raw = socket.create_connection(proxy[:2] if proxy else (host, port), CONNECT_TIMEOUT)
    except OSError as exc:
        return Health(False, _reason(exc))
    try:
        sock = raw
        if proxy and scheme == "https":
            raw.settimeout(READ_TIMEOUT)
            raw.sendall(f"CONNECT {host}:{port} HTTP/1.0\r\n".encode() + login + b"\r\n")
            head = b""
            while b"\r\n\r\n" not in head and len(head) < MAX_ANSWER:
                chunk = raw.recv(1)  # byte by byte: what follows the head is the tunnel's
                if not chunk:
                    break
                head += chunk
            words = head.split(b"\r\n", 1)[0].split(None, 1)
            if len(words) < 2 or not words[1].startswith(b"200"):
                said = words[1].decode("ascii", "replace") if len(words) > 1 else "nothing"
                return Health(False, f"it refused to connect to the Manager: {said}")
        elif proxy:
            prefix = f"http://{host}:{port}{prefix}"  # a plain proxy takes the whole URL
        if scheme == "https":
            import ssl  # noqa: PLC0415 - only for https Managers

            try:
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
            except OSError as exc:
                from ocm import tls  # noqa: PLC0415 - with ssl, only for https Managers

                kind = tls.handshake_failure(exc)
                if kind == tls.PLAIN_HTTP:
                    return Health(False, f"{kind}; try its http:// URL")
                return Health(False, kind or _reason(exc))
        sock.settimeout(READ_TIMEOUT)
        request = (
            f"GET {prefix}/api/health HTTP/1.0\r\nHost: {host}\r\n"
            "Accept: application/json\r\nUser-Agent: ocm-status\r\nConnection: close\r\n"
        )
        if token:
            request += f"Authorization: Bearer {token}\r\n"
        sock.sendall(request.encode("ascii") + (login if scheme == "http" else b"") + b"\r\n")
        answer = b""
        while len(answer) < MAX_ANSWER and not _complete(answer):
            chunk = sock.recv(MAX_ANSWER)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:
        return Health(False, _reason(exc))
    finally:
        raw.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or status_line[1] != b"200":
        code = status_line[1].decode("ascii", "replace") if len(status_line) > 1 else "nothing"
        return Health(False, f"/api/health answered {code}, not an ocm Manager's 200")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return Health(False, "/api/health did not answer JSON")
    if not isinstance(data, dict):
        return Health(False, "/api/health did not answer a JSON object")
    opencode = data.get("opencode")
    state = opencode.get("state") if isinstance(opencode, dict) else None
    version = data.get("version")
    health = Health(
        True,
        opencode_state=state if isinstance(state, str) else None,
        version=version if isinstance(version, str) else None,
    )
    verdict = data.get("token")  # a Manager from before this answer says nothing of the token
    health.token = verdict if token and verdict in ("accepted", "rejected") else None
    return health
