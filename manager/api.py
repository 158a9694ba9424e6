"""Health and the workspace list (SPEC §4)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from manager.registry import get_registry
from ocm import __version__

api_bp = Blueprint("api", __name__, url_prefix="/api")


@api_bp.get("/health")
def health() -> Any:
    upstream = current_app.extensions["ocm"].opencode
    state = upstream.state if upstream is not None else "disabled"
    return jsonify(status="ok", version=__version__, opencode={"state": state})


@api_bp.get("/internal/opencode-workspaces")
def workspaces() -> Any:
    repos = get_registry().list_repos(ready_only=True)
    return jsonify(workspaces=[repo.as_workspace() for repo in repos])
