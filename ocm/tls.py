"""What a failed TLS handshake on a connection the server took means, for both of ocm's ways
to a Manager (:mod:`ocm.transport` and ``ocm status``'s :mod:`ocm.probe`)."""

from __future__ import annotations

import socket
import ssl

PLAIN_HTTP = "it does not answer TLS: it may serve plain HTTP"
CERTIFICATE = "TLS handshake failed"

# What OpenSSL says when the first bytes back are no TLS record: a plain-HTTP server's
# answer ("HTTP/1.1 400", the Manager's own to a handshake) reads as a bad version number,
# or, in newer OpenSSL, as a bad record.
_PLAIN_TEXT_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)


def handshake_failure(exc: OSError) -> str | None:
    """:data:`PLAIN_HTTP` or :data:`CERTIFICATE` (any other TLS failure) for ``exc`` raised by
    a handshake; None when it is no TLS matter (the connection's own failure)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CERTIFICATE
    # Silence (a server waiting for a request head), a close or a reset before any TLS
    # answer, or an answer that is no TLS: all what a plain-HTTP server does with a
    # handshake.
    if (
        isinstance(exc, (socket.timeout, ssl.SSLEOFError, ConnectionResetError))
        or getattr(exc, "reason", None) in _PLAIN_TEXT_REASONS
    ):
        return PLAIN_HTTP
    if isinstance(exc, ssl.SSLError):
        return CERTIFICATE
    return None
