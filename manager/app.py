"""The Flask app factory: wires settings, the registry and the blueprints together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from manager.auth import install_auth
from manager.config import Settings
from manager.errors import register_error_handlers
from manager.registry import Registry
from manager.streams import StreamTracker


@dataclass
class Services:
    """What the views share, kept on ``app.extensions["ocm"]``."""

    settings: Settings
    registry: Registry
    streams: StreamTracker = field(default_factory=StreamTracker)
    # The OpenCode server the proxy forwards to (manager.opencode); None means no proxy.
    opencode: Any = None


def create_app(settings: Settings, *, services: Services | None = None) -> Flask:
    settings.ensure_dirs()
    if services is None:
        services = Services(settings=settings, registry=Registry(settings.database_path))
    app = Flask("manager")
    app.config["MAX_CONTENT_LENGTH"] = None  # bodies are streamed; limits live in the mirror
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["ocm"] = services
    register_error_handlers(app)
    install_auth(app)

    from manager.api import api_bp
    from manager.mirror import clean_staging, mirror_bp
    from manager.proxy import proxy_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(mirror_bp)
    app.register_blueprint(proxy_bp)
    # A push cut off by a crash left its staging behind (and maybe a half switch): undo it.
    clean_staging(settings.staging_dir, [repo.directory for repo in services.registry.list_repos()])
    return app
