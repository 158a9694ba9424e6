"""One page, two forms: the same plain data as HTML (a template) or as JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import jsonify, render_template, request

from ocm.printable import DIRECTION_CONTROLS

# Names the version of a page's data on both forms, so the script can tell when what it
# shows went stale without comparing (or even parsing) the JSON.
VERSION_HEADER = "X-Ocm-Data-Version"


# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): in a branch name, a
# commit subject or a git message from a remote, one could show text reversed and reorder
# the Manager's own words after it in the same cell. Pages show them as their code points.
_DIRECTION_CONTROLS = {c: f"[U+{c:04X}]" for c in DIRECTION_CONTROLS}


def shown_plainly(value: Any) -> Any:
    """Jinja's ``finalize``: every value a page prints, with direction controls made
    visible (an ASCII stand-in, so it is as safe in HTML as the text it replaces)."""
    if isinstance(value, str) and not value.isascii():
        plain = str(value).translate(_DIRECTION_CONTROLS)
        return type(value)(plain) if plain != value else value
    return value


def data_version(data: dict[str, Any]) -> str:
    encoded = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def wants_json() -> bool:
    if request.args.get("format") == "json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes["text/html"]


def page(template: str, data: dict[str, Any], *, status: int = 200, **view: Any) -> Any:
    """``data`` as JSON when asked for, else ``template`` rendered with ``data`` and ``view``
    (what only the HTML needs: flash messages, form values)."""
    version = data_version(data)
    if wants_json():
        response = jsonify(data)
    else:
        html = render_template(template, **data, **view, data_version=version)
        response = current_response(html)
    response.headers[VERSION_HEADER] = version
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def current_response(html: str) -> Any:
    from flask import make_response

    response = make_response(html)
    # The pages are only ever framed by themselves, and load nothing from elsewhere.
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def allow_forms_to(response: Any, origin: str) -> Any:
    """Let the page's forms lead to ``origin`` too: ``form-action`` also covers where the
    answer to a form redirects, and the sign-in's may return to OpenCode's web app."""
    policy = response.headers.get("Content-Security-Policy")
    if policy:
        widened = policy.replace("form-action 'self'", f"form-action 'self' {origin}")
        response.headers["Content-Security-Policy"] = widened
    return response
