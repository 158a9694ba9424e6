"""Who may load a console page: one check before every request to a console blueprint.

Called by ``manager.auth.install_auth`` instead of the token check. Signed-out browsers are
sent to the sign-in page (a JSON twin gets 401); state-changing requests must come from a
page of this origin (CSRF), the sign-in form included, so no other site can sign a browser
in or out. A Manager that listens on loopback only, with no proxy in front, takes them only
when addressed by a loopback name: a page of another site whose name was pointed at
127.0.0.1 (DNS rebinding) passes the Origin check, being its own origin, and could otherwise
spend the sign-in limit of this machine's address with guesses, locking its user out.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from flask import current_app, redirect, request

from manager.config import Settings
from manager.server import is_loopback
from manager.web.render import wants_json
from manager.web.return_to import signin_path
from manager.web.signin import SAFE_METHODS, origin_ok, signed_in

# Reachable signed out: the sign-in page itself and the stylesheet/script it uses.
PUBLIC_ENDPOINTS = frozenset({"web_signin.root", "web_signin.signin_page", "web_static.static"})
# Signed out, a state-changing request to these is still allowed (after the Origin check).
PUBLIC_ACTIONS = frozenset({"web_signin.signin", "web_signin.signout"})


def forbidden_origin(environ: dict[str, Any]) -> Any:
    from manager.errors import ApiError
    from manager.web.proxy_faults import proxy_fault

    return proxy_fault(environ) or ApiError(
        403,
        "cross_origin",
        "This request did not come from the Manager's own pages; reload the page and retry.",
    )


def foreign_host(names: frozenset[str]) -> Any:
    from manager.errors import ApiError

    return ApiError(
        403,
        "foreign_host",
        "This Manager listens on this machine only and takes forms only from its pages opened"
        f" as {', '.join(sorted(names))}; open it by one of those addresses.",
    )


@functools.cache
def local_names(settings: Settings) -> frozenset[str] | None:
    """The names a state-changing request may address a loopback-only Manager by; None when
    any will do (it listens beyond loopback, or a proxy in front passes its own Host)."""
    if settings.trusted_proxy or not is_loopback(settings.host):
        return None
    return frozenset({"localhost", "127.0.0.1", "[::1]", settings.host.lower()})


def addressed_locally(environ: dict[str, Any], names: frozenset[str]) -> bool:
    host = (environ.get("HTTP_HOST") or "").lower()
    if not host.startswith("["):
        host = host.rsplit(":", 1)[0]
    elif "]" in host:
        host = host[: host.index("]") + 1]
    if host in names or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def guard_request() -> Any:
    """None to let the request through, else the answer to give instead; a refusal is
    raised, so that a browser gets it as a page (``manager.web.views.errors``)."""
    if not origin_ok(request.environ):
        raise forbidden_origin(request.environ)
    services = current_app.extensions["ocm"]
    names = local_names(services.settings)
    if (
        names is not None
        and request.method not in SAFE_METHODS
        and not addressed_locally(request.environ, names)
    ):
        raise foreign_host(names)
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS or endpoint in PUBLIC_ACTIONS:
        return None
    if signed_in(request.environ, services):
        return None
    if wants_json() or request.method not in ("GET", "HEAD"):
        raise not_signed_in()
    # Back to this very page once signed in.
    return redirect(signin_path(request.full_path.rstrip("?")), code=303)


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
