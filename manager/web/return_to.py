"""Where a sign-in returns to: the page a signed-out browser asked for, never another site.

A signed-out page load is sent to ``/signin?next=<what it asked for>`` — by the console's
guard for its own pages, by OpenCode's web app listener for the app's (a link into a repo's
sessions) — and the sign-in sends the browser back there. ``next`` comes from a URL anyone
can write, so it is taken only when it names this console (a path) or OpenCode's web app of
this Manager (its origin exactly); anything else (``//evil.com``, ``https://evil.com``,
``/\\evil.com``, a tab that browsers drop from ``/\t/evil.com``) is ignored, and the
sign-in goes to the repos as before.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

PARAMETER = "next"


def signin_path(asked_for: str) -> str:
    """The sign-in page's address that returns to ``asked_for`` afterwards."""
    return f"/signin?{PARAMETER}={quote(asked_for, safe='')}"


def _plain_path(path: str) -> bool:
    """A path of this origin: one leading slash, no backslash (browsers read ``\\`` as
    ``/``), no whitespace or control character (browsers drop tabs and line breaks)."""
    return (
        path.startswith("/")
        and not path.startswith("//")
        and "\\" not in path
        and all(char.isprintable() and not char.isspace() for char in path)
    )


def safe_return(asked_for: str | None, app_base: str | None) -> str | None:
    """``asked_for`` when it is a path of the console, or an address in OpenCode's web app
    whose origin is ``app_base`` (``links.web_app_base``; None when the Manager serves no
    app); else None."""
    if not asked_for:
        return None
    if asked_for.startswith("/"):
        return asked_for if _plain_path(asked_for) else None
    if app_base is None or not asked_for.lower().startswith(app_base.lower() + "/"):
        return None
    rest = asked_for[len(app_base) :]
    return asked_for if _plain_path(rest) else None


def app_base_for(request: Any, services: Any) -> str | None:
    """The origin of OpenCode's web app as this console request's browser reaches it."""
    from manager.web.opencode_app.links import web_app_base

    return web_app_base(services, request.host, request.scheme)
