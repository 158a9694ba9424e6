"""Sign-in and sign-out: the Manager token in, a session cookie out."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, jsonify, redirect, request, url_for

from manager.tokens import token_matches
from manager.web.render import allow_forms_to, page, wants_json
from manager.web.return_to import PARAMETER, app_base_for, safe_return
from manager.web.signin import (
    SESSION_SECONDS,
    end_session,
    is_https,
    session_cookie,
    signed_in,
    start_session,
)
from manager.web.state import console_state, services

bp = Blueprint("web_signin", __name__)
log = logging.getLogger("manager.web")


def set_session_cookie(response: Any, value: str) -> Any:
    response.set_cookie(
        services().cookie_name,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request.environ),
    )
    return response


@bp.get("/")
def root() -> Any:
    if signed_in(request.environ, services()):
        return redirect(url_for("web_repos.repos"), code=303)
    return redirect(url_for("web_signin.signin_page"), code=303)


def _return_to(asked_for: str | None) -> str | None:
    """The page to go to once signed in, when the browser was sent here from one."""
    return safe_return(asked_for, app_base_for(request, services()))


def _signin_form(data: dict[str, Any], return_to: str | None, **view: Any) -> Any:
    """The sign-in page, its form carrying where to go once signed in."""
    response = page("signin.html", data, return_to=return_to, **view)
    if return_to and not return_to.startswith("/"):  # a page of OpenCode's web app
        allow_forms_to(response, "/".join(return_to.split("/", 3)[:3]))
    return response


def _refused(code: str, message: str) -> dict[str, Any]:
    """A sign-in page's data when it says no: the API's ``{"error", "message"}`` in its
    JSON twin too, with ``signedIn``."""
    return {"signedIn": False, "error": code, "message": message}


def _after_signin(asked_for: str | None) -> Any:
    return redirect(_return_to(asked_for) or url_for("web_repos.repos"), code=303)


@bp.get("/signin")
def signin_page() -> Any:
    asked_for = request.args.get(PARAMETER)
    if signed_in(request.environ, services()):
        return _after_signin(asked_for)
    return_to = _return_to(asked_for)
    if session_cookie(request.environ, services().cookie_name):
        # Sent here from a page whose sign-in is over: say why, or it looks like a glitch.
        return _signin_form(
            _refused(
                "signin_ended",
                "Your sign-in has ended: the Manager token was rotated, or 12 hours passed."
                " Sign in with the current token.",
            ),
            return_to,
        )
    return _signin_form({"signedIn": False}, return_to)


@bp.post("/signin")
def signin() -> Any:
    address = request.remote_addr or "?"
    wait = console_state().throttle.allow(address)
    if wait:
        log.warning("console sign-in from %s refused: too many attempts", address)
        refused = _signin_form(
            _refused(
                "too_many_attempts", f"Too many attempts; wait {math.ceil(wait)} s and try again."
            ),
            _return_to(request.form.get(PARAMETER)),
            status=429,
        )
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    token = request.form.get("token", "").strip()
    if not token_matches(services().registry, token or None):
        log.warning("console sign-in from %s refused: wrong token", address)
        return _signin_form(
            _refused(
                "wrong_token",
                "That is not this Manager's token. Ask its operator for the current one.",
            ),
            _return_to(request.form.get(PARAMETER)),
            status=401,
        )
    log.info("console sign-in from %s", address)
    # A browser that signs in again leaves no sign-in of its own behind, still good for a
    # copy of its old cookie until it expires.
    end_session(request.environ, services())
    value = start_session(services())
    response: Any
    if wants_json():
        response = jsonify(signedIn=True)
    else:
        response = _after_signin(request.form.get(PARAMETER))
    return set_session_cookie(response, value)


@bp.post("/signout")
def signout() -> Any:
    end_session(request.environ, services())
    response: Any
    if wants_json():
        response = jsonify(signedIn=False)
    else:
        response = redirect(url_for("web_signin.signin_page"), code=303)
    response.delete_cookie(services().cookie_name, path="/", httponly=True, samesite="Strict")
    return response
