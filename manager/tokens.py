"""The Manager token: made, stored as a hash, read from a request's ``Authorization`` and
compared in constant time. No Flask here: ``ocm-manager token rotate`` imports only this and
the registry (Flask's import was most of that command's time)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from manager.registry import Registry


def hash_token(token: str) -> str:
    # The token is 256 random bits, so a plain SHA-256 is enough: there is nothing to
    # brute-force that a slow KDF would protect.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(registry: Registry) -> str:
    """Make a token, store only its hash (invalidating the old one at once), return it."""
    token = "ocm_" + secrets.token_urlsafe(32)
    registry.set_token_hash(hash_token(token))
    return token


def presented_token(authorization: str | None) -> str | None:
    """The token from ``Bearer <token>`` or Basic auth with the token as password."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


def token_matches(registry: Registry, candidate: str | None) -> bool:
    stored = registry.token_hash()
    if not stored or candidate is None:
        return False
    return hmac.compare_digest(hash_token(candidate), stored)
