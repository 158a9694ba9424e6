"""What the Repos page shows for each repo, as plain data (the page and its JSON twin)."""

from __future__ import annotations

import time
from typing import Any

from manager.registry import READY, Repo
from manager.web.clones import CloneJobs
from manager.web.upstream import session_count
from ocm.mirror import gitcmd


def _head(repo: Repo) -> dict[str, str] | None:
    line = gitcmd.maybe(repo.directory, "log", "-1", "--format=%h%x00%s")
    if line is None:
        return None
    commit, _, subject = line.partition("\0")
    return {"commit": commit, "subject": subject}


def _changes(repo: Repo) -> int | None:
    # GIT_OPTIONAL_LOCKS=0 (gitcmd): looking never takes the index lock a push needs.
    done = gitcmd.run(repo.directory, "status", "--porcelain", "-z", check=False)
    return len(gitcmd.split_z(done.stdout)) if done.returncode == 0 else None


def ago(then: float, now: float) -> str:
    seconds = max(0, int(now - then))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _transfer(found: tuple[float, str] | None, now: float) -> dict[str, Any] | None:
    if found is None:
        return None
    at, address = found
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return {"at": iso, "ago": ago(at, now), "from": address}


def repo_rows(services: Any, clones: CloneJobs) -> list[dict[str, Any]]:
    registry = services.registry
    transfers = registry.transfers()
    now = time.time()
    opencode_answers = True
    rows = []
    for repo in registry.list_repos():
        ready = repo.status == READY and (repo.directory / ".git").is_dir()
        sessions = None
        if ready and opencode_answers:
            sessions = session_count(services, str(repo.directory))
            # One silence is enough: do not wait a timeout per repo for a server that is down.
            opencode_answers = sessions is not None
        kinds = transfers.get(repo.id, {})
        rows.append(
            {
                "id": repo.id,
                "name": repo.name,
                "branch": repo.branch,
                "status": repo.status,
                "error": repo.error,
                "progress": clones.progress(repo.id) if repo.status == "cloning" else "",
                "directory": str(repo.directory),
                "originUrl": repo.origin_url,
                "head": _head(repo) if ready else None,
                "uncommittedChanges": _changes(repo) if ready else None,
                "tuisAttached": services.streams.attached(str(repo.directory)),
                "lastPush": _transfer(kinds.get("push"), now),
                "lastPull": _transfer(kinds.get("pull"), now),
                "opencodeSessions": sessions,
            }
        )
    return rows
