"""The Manager token checked on every request but ``/api/health`` and the console's pages
(which sign in once with it and then carry a cookie: ``manager.web``); the token itself is
``manager.tokens``."""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from manager.errors import ApiError
from manager.registry import get_registry
from manager.tokens import presented_token, token_matches

PUBLIC_PATHS = frozenset({"/api/health"})


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "A valid Manager token is required (Authorization: Bearer <token>);"
        " run `ocm login <url>` with the token from the Manager's operator.",
    )


def install_auth(app: Flask) -> None:
    from manager.web import is_console_request
    from manager.web.guard import guard_request

    @app.before_request
    def _require_token() -> Any:
        if request.path in PUBLIC_PATHS:
            return None
        if is_console_request():
            # The console's pages sign in with a cookie; the API below stays token-only.
            return guard_request()
        if not token_matches(get_registry(), presented_token(request.headers.get("Authorization"))):
            raise unauthorized()
        return None
