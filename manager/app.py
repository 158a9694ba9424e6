"""The WSGI application waitress serves: the proxy's hot path beside the Flask app for
everything else, wired to the settings and the registry they share."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from manager.auth import install_auth
from manager.config import Settings
from manager.errors import register_error_handlers
from manager.inputs import install_input_checks
from manager.proxy import Proxy, is_proxy_path
from manager.registry import Registry
from manager.streams import StreamTracker
from manager.web.opencode_app import OpencodeWebApp
from manager.web.signin import cookie_name

log = logging.getLogger("manager")


@dataclass
class Services:
    """What the views share, kept on ``app.extensions["ocm"]``."""

    settings: Settings
    registry: Registry
    streams: StreamTracker = field(default_factory=StreamTracker)
    # The OpenCode server the proxy forwards to (manager.opencode); None means no proxy.
    opencode: Any = None
    # The bound port of each listener by name ("console", "opencode_app"), set once bound
    # (manager.server): links between them are made from it.
    ports: dict[str, int] = field(default_factory=dict)
    # The in-memory view of the token and the live sign-ins (manager.token_watch), once
    # serving (manager.server); sign-ins and sign-outs refresh it at once.
    token_watch: Any = None
    # The name of the console's sign-in cookie (manager.web.signin.cookie_name), set at start.
    cookie_name: str = ""
    # Set once the Manager has been asked to stop: a transfer whose git the same stop ended
    # then says so (manager.mirror).
    stopping: threading.Event = field(default_factory=threading.Event)


class ManagerApp:
    """Requests under the proxy prefix go to ``manager.proxy`` directly, all others to Flask.

    The proxy carries a TUI's every API call and Flask's request handling would double its
    CPU per request (bench/proxy.py); the rest of the API is rare and enjoys Flask."""

    def __init__(self, flask_app: Flask, services: Services) -> None:
        self.flask = flask_app
        self.services = services
        self.proxy = Proxy(services)
        # Served on a listener of its own (manager.server), sharing the proxy's connections.
        self.opencode_app = OpencodeWebApp(services, self.proxy)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if is_proxy_path(environ.get("PATH_INFO", "")):
            return self.proxy(environ, start_response)
        return self.flask(environ, start_response)


def create_app(settings: Settings, *, services: Services | None = None) -> ManagerApp:
    settings.ensure_dirs()
    if services is None:
        services = Services(settings=settings, registry=Registry(settings.database_path))
    app = Flask("manager")
    app.config["MAX_CONTENT_LENGTH"] = None  # bodies are streamed; limits live in the mirror
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ocm"] = services
    services.cookie_name = cookie_name(services.registry.instance_id())
    register_error_handlers(app)
    install_auth(app)
    install_input_checks(app)

    from manager.api import api_bp
    from manager.mirror import clean_staging, mirror_bp
    from manager.web import register_console

    app.register_blueprint(api_bp)
    app.register_blueprint(mirror_bp)
    register_console(app)
    from manager.repos import anchor_relative_directories

    for name, was in anchor_relative_directories(services.registry, settings.repos_dir):
        log.warning("repo %s was registered at %s; now %s", name, was, settings.repos_dir / name)
    # A push cut off by a crash left its staging behind (and maybe a half switch): undo it.
    clean_staging(settings.staging_dir, [repo.directory for repo in services.registry.list_repos()])
    return ManagerApp(app, services)
