"""Who may load a console page: one check before every request to a console blueprint.

Called by ``manager.auth.install_auth`` instead of the token check. Signed-out browsers are
sent to the sign-in page (a JSON twin gets 401); state-changing requests must come from a
page of this origin (CSRF), the sign-in form included, so no other site can sign a browser
in or out.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, request, url_for

from manager.web.render import wants_json
from manager.web.signin import origin_ok, signed_in

# Reachable signed out: the sign-in page itself and the stylesheet/script it uses.
PUBLIC_ENDPOINTS = frozenset({"web_signin.root", "web_signin.signin_page", "web_static.static"})
# Signed out, a state-changing request to these is still allowed (after the Origin check).
PUBLIC_ACTIONS = frozenset({"web_signin.signin", "web_signin.signout"})


def forbidden_origin() -> Any:
    from manager.errors import error_response

    return error_response(
        403,
        "cross_origin",
        "This request did not come from the Manager's own pages; reload the page and retry.",
    )


def guard_request() -> Any:
    """None to let the request through, else the answer to give instead."""
    if not origin_ok(request.environ):
        return forbidden_origin()
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS or endpoint in PUBLIC_ACTIONS:
        return None
    if signed_in(request.environ, current_app.extensions["ocm"]):
        return None
    if wants_json() or request.method not in ("GET", "HEAD"):
        raise not_signed_in()
    return redirect(url_for("web_signin.signin_page"), code=303)


def not_signed_in() -> Any:
    """The 401 of a console page's JSON twin or form without a sign-in. Not the API's "a
    valid Manager token is required": a valid token in a header does not open the console."""
    from manager.errors import ApiError

    return ApiError(
        401,
        "not_signed_in",
        "The console needs a browser sign-in: open /signin and give the Manager token (in an"
        " Authorization header the token opens only the /api endpoints).",
    )
