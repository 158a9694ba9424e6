"""``ocm status``'s one network call: is the Manager answering ``GET /api/health`` right now?

Kept apart from :mod:`ocm.api` on purpose: ``ocm status`` must start fast, and one HTTP/1.0
request needs no ``http.client``. This is a plain request over a socket with short timeouts; it
sends no token (``/api/health`` needs none), so nothing secret can leak through it.
"""

from __future__ import annotations

import json
import socket

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
MAX_ANSWER = 65536


class Health:
    """The outcome of one probe: reachable or not, and what the Manager said."""

    __slots__ = ("reachable", "reason", "opencode_state", "version")

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

    def to_json(self) -> dict[str, object]:
        return {
            "reachable": self.reachable,
            "reason": self.reason,
            "opencode": self.opencode_state,
            "version": self.version,
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


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout):
        return "no answer within a few seconds"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or exc.__class__.__name__


def check(url: str) -> Health:
    """Probe ``<url>/api/health``; never raises."""
    try:
        scheme, host, port, prefix = _split(url)
    except ValueError:
        return Health(False, "the URL has an invalid port")
    try:
        raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        return Health(False, _reason(exc))
    try:
        sock = raw
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
            "Accept: application/json\r\nUser-Agent: ocm-status\r\n\r\n"
        )
        sock.sendall(request.encode("ascii"))
        answer = b""
        while len(answer) < MAX_ANSWER:
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
    except ValueError:
        return Health(False, "/api/health did not answer JSON")
    if not isinstance(data, dict):
        return Health(False, "/api/health did not answer a JSON object")
    opencode = data.get("opencode")
    state = opencode.get("state") if isinstance(opencode, dict) else None
    version = data.get("version")
    return Health(
        True,
        opencode_state=state if isinstance(state, str) else None,
        version=version if isinstance(version, str) else None,
    )
