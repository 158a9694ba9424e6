"""JSON errors for every failure: no HTML error page ever reaches an API client (SPEC §4).

A console page met in a browser gets its refusals as pages instead (``manager.web.views.errors``).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """Raised anywhere in a request to answer ``{"error": code, "message": message}``;
    ``details`` are more fields of that object, for a client to act on without parsing the
    sentence."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, str | None] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_response(
    status: int, code: str, message: str, details: dict[str, str | None] | None = None
) -> Any:
    response = jsonify({**(details or {}), "error": code, "message": message})
    response.status_code = status
    return response


def wsgi_error(start_response: Any, exc: ApiError) -> list[bytes]:
    """The same JSON error from a plain WSGI application (the proxy runs outside Flask)."""
    body = json.dumps({**exc.details, "error": exc.code, "message": exc.message}).encode()
    start_response(
        f"{exc.status} {HTTPStatus(exc.status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        return error_response(status, code_for(exc), exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        return error_response(
            500, "internal_error", "The Manager hit an unexpected error; see its log."
        )
