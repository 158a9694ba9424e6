"""Health and the workspace list (SPEC §4), each repo with its root commits (SPEC §3)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from manager.registry import get_registry
from manager.roots import RootCommits
from manager.tokens import presented_token, token_matches
from ocm import __version__

api_bp = Blueprint("api", __name__, url_prefix="/api")


@api_bp.get("/health")
def health() -> Any:
    """Open to all. A request that carries a token (``ocm status``) also learns whether it
    is the current one, so that a rotated token is named where the user looks first."""
    upstream = current_app.extensions["ocm"].opencode
    state = upstream.state if upstream is not None else "disabled"
    answer: dict[str, Any] = {"status": "ok", "version": __version__, "opencode": {"state": state}}
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        good = token_matches(get_registry(), presented_token(authorization))
        answer["token"] = "accepted" if good else "rejected"
    return jsonify(answer)


def _root_commits() -> RootCommits:
    cache: RootCommits = current_app.extensions.setdefault("ocm.root_commits", RootCommits())
    return cache


@api_bp.get("/internal/opencode-workspaces")
def workspaces() -> Any:
    """Ready repos; ``rootCommits`` lets a checkout without ``origin`` find its repo. A
    client whose checkout has an origin asks without them (``?rootCommits=0``): listing
    them may walk a long history for each repo whose HEAD moved."""
    repos = get_registry().list_repos(ready_only=True)
    if request.args.get("rootCommits") == "0":
        return jsonify(workspaces=[repo.as_workspace() for repo in repos])
    roots = _root_commits()
    roots.forget({repo.directory for repo in repos})
    return jsonify(
        workspaces=[
            {**repo.as_workspace(), "rootCommits": roots.of(repo.directory)} for repo in repos
        ]
    )
