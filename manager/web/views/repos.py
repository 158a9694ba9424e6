"""Repos: the list (live), adding one from a git URL or a path, removing one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, request, url_for

from manager.ask_opencode import session_count
from manager.errors import ApiError
from manager.registry import CLONING, READY
from manager.repos import RepoBusy, RepoError, remove_repo
from manager.web.render import page, wants_json
from manager.web.repo_status import repo_rows
from manager.web.state import console_state, services
from ocm.origin import without_credentials

bp = Blueprint("web_repos", __name__)


def _listing(**view: Any) -> Any:
    state = console_state()
    rows = state.rows.get(lambda: repo_rows(services()))
    for row in rows:
        # In memory, so read at every request: a clone's progress moves on between two
        # computations of the rows.
        row["progress"] = state.clones.progress(row["id"]) if row["status"] == CLONING else ""
        row["sessionsUrl"] = _sessions_url(row)
    data = {"repos": rows, "opencode": _opencode_state()}
    return page("repos.html", data, status=view.pop("status", 200), **view)


def _sessions_url(row: dict[str, Any]) -> str | None:
    """Where OpenCode's web app opens this repo's sessions (None: no app, or not ready)."""
    if row["status"] != "ready":
        return None
    from manager.web.opencode_app import app_url_for

    return app_url_for(row["directory"], services(), request.host, scheme=request.scheme)


def _opencode_state() -> str:
    upstream = services().opencode
    return upstream.state if upstream is not None else "disabled"


@bp.get("/repos")
def repos() -> Any:
    removed = request.args.get("removed", type=int)
    notice = console_state().removal_notices.pop(removed, None) if removed is not None else None
    if notice is not None:
        return _listing(message_kind="error", message=notice)
    return _listing()


@bp.post("/repos")
def add() -> Any:
    source = request.form.get("source", "").strip()
    name = request.form.get("name", "").strip() or None
    branch = request.form.get("branch", "").strip() or None
    try:
        repo_id = console_state().clones.start(
            services().registry,
            services().settings.repos_dir,
            source,
            name=name,
            branch=branch,
        )
    except RepoError as exc:
        if wants_json():
            raise ApiError(400, "bad_repo", f"{exc}.") from None
        # Refilled so nothing typed is lost, but a password goes no further than the form.
        form = {"source": without_credentials(source), "name": name or "", "branch": branch or ""}
        return _listing(
            status=400, message_kind="error", message=f"Cannot add the repo: {exc}.", form=form
        )
    console_state().rows.invalidate()
    if wants_json():
        response = jsonify(id=repo_id, status=CLONING)
        response.status_code = 202
        return response
    return redirect(url_for("web_repos.repos"), code=303)


def _repo_or_404(repo_id: int) -> Any:
    repo = services().registry.get_repo(repo_id)
    if repo is None:
        abort(404, description=f"There is no repo {repo_id} on this Manager.")
    return repo


@bp.get("/repos/<int:repo_id>/remove")
def confirm_remove(repo_id: int) -> Any:
    repo = _repo_or_404(repo_id)
    data = {
        "repo": {
            "id": repo.id,
            "name": repo.name,
            "directory": str(repo.directory),
            "hasFiles": repo.directory.exists(),
            # Its partial clone goes with it (manager.repos.remove_repo).
            "unfinished": repo.status != READY,
            # A clone this Manager runs: removing it stops git first.
            "cloning": bool(console_state().clones.progress(repo.id)),
        },
        "tuisAttached": services().streams.attached(str(repo.directory)),
        # OpenCode keeps them, but nothing of the Manager's reaches them once it is gone.
        "opencodeSessions": session_count(services(), str(repo.directory))
        if repo.status == READY
        else None,
    }
    return page("remove.html", data)


@bp.post("/repos/<int:repo_id>/remove")
def remove(repo_id: int) -> Any:
    repo = _repo_or_404(repo_id)
    if request.form.get("confirm") != "yes":
        raise ApiError(400, "not_confirmed", "Confirm the removal on the repo's remove page.")
    if repo.status == CLONING:
        # A clone started here can be stopped (git never gives up on a silent server); a
        # repo being made by `ocm push --create`, or cloned by the CLI, cannot.
        if not console_state().clones.stop(repo.id):
            raise ApiError(409, "still_cloning", f"{repo.name} is still being made; wait for it.")
        console_state().rows.invalidate()
        if wants_json():
            return jsonify(id=repo.id, removed=True, filesDeleted=True)
        return redirect(url_for("web_repos.repos"), code=303)
    delete_files = request.form.get("delete_files") == "yes"
    try:
        removed = remove_repo(services().registry, str(repo.id), delete_files=delete_files)
    except RepoBusy:
        raise ApiError(
            409,
            "repo_busy",
            f"A push or pull of {repo.name} is in progress; remove it once that has finished.",
        ) from None
    except RepoError as exc:
        raise ApiError(404, "unknown_repo", f"{exc}.") from None
    console_state().rows.invalidate()
    left = removed.advice()
    if wants_json():
        deleted = removed.files in ("deleted", "partial") and left is None
        return jsonify(id=repo.id, removed=True, filesDeleted=deleted, filesLeft=left)
    if left is not None:
        console_state().removal_notices[repo.id] = f"Removed {repo.name}, but {left}."
        return redirect(url_for("web_repos.repos", removed=repo.id), code=303)
    return redirect(url_for("web_repos.repos"), code=303)
