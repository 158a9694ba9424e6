"""A refusal met in the browser: the console's own page, not the API's bare JSON.

A form sent to a repo removed meanwhile, a reloaded token rotation, a sign-in that ended
while a form was open: each gets a page with the message, the way on, and the console's
navigation. The JSON twin (``?format=json``, ``Accept: application/json``) keeps the API's
shape, ``{"error", "message"}``, with the same status.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from manager.errors import ApiError, code_for, error_response
from manager.web.render import page

# What a person in a browser needs instead of the JSON's wording, which speaks of headers.
SIGNIN_ENDED = (
    "You are not signed in any more: the Manager token was rotated, or this browser signed"
    " out. Sign in again with the current token; what the form held was not sent."
)


def error_page(status: int, code: str, message: str) -> Any:
    from manager.web.render import wants_json

    signed_out = code == "not_signed_in"
    if signed_out and not wants_json():
        message = SIGNIN_ENDED
    data = {"error": code, "message": message}
    return page("error.html", data, status=status, signed_out=signed_out)


def register_error_pages(app: Flask) -> None:
    """In front of the app's JSON handlers (``manager.errors``): errors raised by a console
    page's view, or by the guard before it, become pages; every other request's stay JSON."""
    from manager.web import is_console_request

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        if not is_console_request():
            return error_response(exc.status, exc.code, exc.message, exc.details)
        return error_page(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if not is_console_request():
            return error_response(status, code_for(exc), exc.description or exc.name)
        return error_page(status, code_for(exc), _in_a_browser(exc))


def _in_a_browser(exc: HTTPException) -> str:
    """The message of a console page's refusal; for an address no route takes, in the
    console's words (Werkzeug's speak of "the server" and "the requested URL")."""
    if exc is request.routing_exception and exc.code == 404:
        return f"The console has no page at {request.path}."
    if exc is request.routing_exception and exc.code == 405:
        return f"{request.path} takes a form sent from the console's pages, not a page load."
    return str(exc.description or exc.name)
