"""Settings → Manager token: rotate it; the new one is shown once, with the login line."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint, request

from manager.errors import ApiError
from manager.tokens import new_token
from manager.web.render import page
from manager.web.signin import own_origin, start_session
from manager.web.state import services
from manager.web.views.signin import set_session_cookie

bp = Blueprint("web_settings", __name__)
log = logging.getLogger("manager.web")


def manager_url() -> str:
    """The Manager's URL as this browser reached it: what the team's laptops use too."""
    return own_origin(request.environ)


def _rotates() -> str:
    """Names the token the settings form would replace, without giving anything of it away:
    a form sent again (a reload of the new token's page) names one already replaced."""
    stored = services().registry.token_hash() or ""
    return hashlib.sha256(f"ocm rotation of {stored}".encode()).hexdigest()[:32]


@bp.get("/settings")
def settings() -> Any:
    return page("settings.html", {"managerUrl": manager_url()}, rotates=_rotates())


@bp.post("/settings/token")
def rotate() -> Any:
    if request.form.get("confirm") != "yes":
        raise ApiError(400, "not_confirmed", "Tick the confirmation box to rotate the token.")
    sent = request.form.get("rotates")
    if sent is not None and sent != _rotates():
        raise ApiError(
            409,
            "already_rotated",
            "This form was sent before (a reload?): the token it replaced is gone already,"
            " and the one shown then is the current one. To make another, rotate again from"
            " Settings.",
        )
    token = new_token(services().registry)
    log.info("console: Manager token rotated from %s", request.remote_addr)
    url = manager_url()
    data = {"managerUrl": url, "token": token, "loginCommand": f"ocm login {url}"}
    response = page("token.html", data)
    # Rotating ended every sign-in, this one too: keep the browser that did it signed in.
    return set_session_cookie(response, start_session(services()))
