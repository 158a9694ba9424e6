"""The Manager's console in a browser: sign-in, repos, settings and health (SPEC §8).

Each kind of page is one blueprint in ``manager.web.views``; each view builds plain data and
either renders a template from ``templates/`` with it or returns the same data as JSON
(``?format=json`` or ``Accept: application/json``). ``static/`` holds the stylesheet and a
little script that only enhances pages which work without it. The console signs in with the
Manager token once and then rides on a session cookie (``manager.web.signin``); the API
stays token-only (``manager.auth``).
"""

from __future__ import annotations

from flask import Flask

# Blueprints whose requests the console guards itself (``manager.web.guard``) instead of
# demanding the token in an Authorization header.
WEB_BLUEPRINTS = frozenset({"web_signin", "web_repos", "web_settings", "web_health", "web_static"})


def is_console_request() -> bool:
    """Whether the console answers this request (its guard, its pages) rather than the API.

    A console blueprint's, and a browser's page load that no route takes (a form's address
    typed in, ``/repos/``): routing failed, so it has no blueprint, but a person is looking
    and needs a page with a way back, not the API's 401 about headers. Browsers name
    ``text/html`` in ``Accept`` for a page; API clients (and ``curl``) do not, and nothing
    under ``/api/`` is ever a page."""
    from flask import request

    if request.blueprint in WEB_BLUEPRINTS:
        return True
    return (
        request.routing_exception is not None
        and not request.path.startswith("/api/")
        and "text/html" in request.accept_mimetypes.values()
    )


def register_console(app: Flask) -> None:
    from flask import Blueprint

    from manager.web.render import shown_plainly
    from manager.web.views import health, repos, settings, signin
    from manager.web.views.errors import register_error_pages

    app.jinja_env.finalize = shown_plainly

    # The pages' templates and static files, shared by every console blueprint.
    static = Blueprint(
        "web_static",
        __name__,
        static_folder="static",
        static_url_path="/console/static",
        template_folder="templates",
    )
    app.register_blueprint(static)
    for module in (signin, repos, settings, health):
        app.register_blueprint(module.bp)
    register_error_pages(app)
