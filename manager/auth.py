"""The Manager token: made, hashed, and checked on every request but ``/api/health`` and the
console's pages (which sign in once with it and then carry a cookie: ``manager.web``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any

from flask import Flask, request

from manager.errors import ApiError
from manager.registry import Registry, get_registry

PUBLIC_PATHS = frozenset({"/api/health"})


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


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "A valid Manager token is required (Authorization: Bearer <token>);"
        " run `ocm login <url>` with the token from the Manager's operator.",
    )


def install_auth(app: Flask) -> None:
    from manager.web import WEB_BLUEPRINTS
    from manager.web.guard import guard_request

    @app.before_request
    def _require_token() -> Any:
        if request.path in PUBLIC_PATHS:
            return None
        if request.blueprint in WEB_BLUEPRINTS:
            # The console's pages sign in with a cookie; the API below stays token-only.
            return guard_request()
        if not token_matches(get_registry(), presented_token(request.headers.get("Authorization"))):
            raise unauthorized()
        return None
