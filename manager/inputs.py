"""What no request may carry: a NUL character in its query or in a console form.

No git argument, path, branch, URL or label can hold one, and ``subprocess`` refuses such an
argument with a ``ValueError`` before git runs: a push naming its sender ``a%00b`` was
answered "unexpected error" (500), and a ``push --create`` whose branch or origin held one
left the new repo's folder behind, which then blocked the name. Refused here, once, after
the token or the sign-in has been checked, and before any view reads the request.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from manager.errors import ApiError


def _holds_nul(fields: Any) -> bool:
    return any("\0" in key or "\0" in value for key, value in fields.items(multi=True))


def install_input_checks(app: Flask) -> None:
    """Refuse a request whose query (or, on the console, whose form) holds a NUL; installed
    after :func:`manager.auth.install_auth`, whose check runs first."""
    from manager.web import WEB_BLUEPRINTS

    @app.before_request
    def _refuse_nul() -> None:
        where = None
        if _holds_nul(request.args):
            where = "query"
        elif request.blueprint in WEB_BLUEPRINTS and _holds_nul(request.form):
            where = "form"
        if where is not None:
            raise ApiError(
                400,
                "bad_request",
                f"The request's {where} holds a NUL character, which no name, branch, path or"
                " URL can contain.",
            )
