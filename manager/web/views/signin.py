"""Sign-in and sign-out: the Manager token in, a session cookie out."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, jsonify, redirect, request, url_for

from manager.tokens import token_matches
from manager.web.render import page, wants_json
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


@bp.get("/signin")
def signin_page() -> Any:
    if signed_in(request.environ, services()):
        return redirect(url_for("web_repos.repos"), code=303)
    if session_cookie(request.environ, services().cookie_name):
        # Sent here from a page whose sign-in is over: say why, or it looks like a glitch.
        return page(
            "signin.html",
            {"signedIn": False, "error": "signin_ended"},
            message_kind="error",
            message="Your sign-in has ended: the Manager token was rotated, or 12 hours"
            " passed. Sign in with the current token.",
        )
    return page("signin.html", {"signedIn": False})


@bp.post("/signin")
def signin() -> Any:
    address = request.remote_addr or "?"
    wait = console_state().throttle.allow(address)
    if wait:
        log.warning("console sign-in from %s refused: too many attempts", address)
        refused = page(
            "signin.html",
            {"signedIn": False, "error": "too_many_attempts"},
            status=429,
            message_kind="error",
            message=f"Too many attempts; wait {math.ceil(wait)} s and try again.",
        )
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    token = request.form.get("token", "").strip()
    if not token_matches(services().registry, token or None):
        log.warning("console sign-in from %s refused: wrong token", address)
        return page(
            "signin.html",
            {"signedIn": False, "error": "wrong_token"},
            status=401,
            message_kind="error",
            message="That is not this Manager's token. Ask its operator for the current one.",
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
        response = redirect(url_for("web_repos.repos"), code=303)
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
