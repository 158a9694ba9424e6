"""What no request may carry: a NUL character in its query.

No git argument, path, branch, URL or label can hold one, and ``subprocess`` refuses such an
argument with a ``ValueError`` before git runs: a push naming its sender ``a%00b`` was
answered "unexpected error" (500), and a ``push --create`` whose branch or origin held one
left the new repo's folder behind, which then blocked the name. Refused here, once, after
the token or the sign-in has been checked, and before any view reads the request. (The
console's forms need no such check: the add form's source, branch and name are refused
with any control character by :mod:`manager.repos`, and its other fields are only compared.)
"""

from __future__ import annotations

from flask import Flask, request

from manager.errors import ApiError


def install_input_checks(app: Flask) -> None:
    """Refuse a request whose query holds a NUL; installed after
    :func:`manager.auth.install_auth`, whose check runs first."""

    @app.before_request
    def _refuse_nul() -> None:
        if any("\0" in key or "\0" in value for key, value in request.args.items(multi=True)):
            raise ApiError(
                400,
                "bad_request",
                "The request's query holds a NUL character, which no name, branch, path or URL"
                " can contain.",
            )
