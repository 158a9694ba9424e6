"""What the Repos page shows for each repo, as plain data (the page and its JSON twin)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from manager.ask_opencode import session_count, session_counts
from manager.registry import READY, Repo
from ocm.mirror import gitcmd
from ocm.origin import hide_credentials

log = logging.getLogger("manager.web")
# Shown, never stored: the registry says ready, but the repo's checkout is not on disk (its
# folder deleted by hand). "ready" with every value "—" would read as OpenCode not answering.
MISSING = "missing"
# The repos whose missing checkout the log has named, by id and folder: once each, not at
# every tab's poll.
_logged_missing: set[tuple[int, str]] = set()

# Subjects by commit: a commit never changes, and the list is asked for every 2 s per tab.
_subjects: dict[str, str] = {}
SUBJECTS_KEPT = 1000
# A subject is one short line by habit only: a commit from upstream may make it megabytes,
# which the page and its JSON twin (asked for every 2 s by each open tab) would carry whole.
SUBJECT_CHARS = 200


def _subject(repo: Repo, commit: str) -> str:
    if commit not in _subjects:
        if len(_subjects) >= SUBJECTS_KEPT:
            _subjects.clear()
        subject = gitcmd.maybe(repo.directory, "log", "-1", "--format=%s", commit) or ""
        if len(subject) > SUBJECT_CHARS:
            subject = subject[: SUBJECT_CHARS - 1] + "…"
        _subjects[commit] = subject
    return _subjects[commit]


def _git_state(repo: Repo) -> tuple[dict[str, str] | None, int | None]:
    """Head commit and the number of changed paths, from one ``git status`` run.

    GIT_OPTIONAL_LOCKS=0 (gitcmd): looking never takes the index lock a push needs."""
    done = gitcmd.run(repo.directory, "status", "--porcelain=v2", "--branch", "-z", check=False)
    if done.returncode != 0:
        return None, None
    entries = gitcmd.split_z(done.stdout)
    commit = ""
    changes = 0
    skip_next = False
    for entry in entries:
        if skip_next:  # a rename's original path
            skip_next = False
        elif entry.startswith("# branch.oid "):
            commit = entry.split(" ", 2)[2]
        elif not entry.startswith("#"):
            changes += 1
            skip_next = entry.startswith("2 ")
    if not commit or commit == "(initial)":
        return None, changes
    return {"commit": commit[:7], "subject": _subject(repo, commit)}, changes


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


def _missing_checkout(repo: Repo) -> str | None:
    """What is wrong with a ready repo whose checkout is not there, and what to do; None
    when it is there. Said in the log too, once."""
    if repo.directory.is_dir() and (repo.directory / ".git").is_dir():
        _logged_missing.discard((repo.id, str(repo.directory)))
        return None
    where = f"its folder {repo.directory}"
    what = f"{where} is missing" if not repo.directory.is_dir() else f"{where} has no .git"
    advice = f"{what}; put it back, or remove the repo here and add it again"
    if (repo.id, str(repo.directory)) not in _logged_missing:
        _logged_missing.add((repo.id, str(repo.directory)))
        log.warning("repo %s: %s", repo.name, advice)
    return advice


def repo_rows(services: Any) -> list[dict[str, Any]]:
    """Every repo's row but for what the view adds per request (a clone's progress, the
    link to its sessions). Costly with many repos: the view shares them (shared_rows)."""
    registry = services.registry
    transfers = registry.transfers()
    now = time.time()
    by_folder: dict[str, int] | None = None
    listed = False
    opencode_answers = True
    rows = []
    for repo in registry.list_repos():
        missing = _missing_checkout(repo) if repo.status == READY else None
        ready = repo.status == READY and missing is None
        sessions = None
        if ready and not listed:
            by_folder, listed = session_counts(services), True
        if ready and by_folder is not None:
            # Filed under the real path, as OpenCode files a session made through a symlink.
            sessions = by_folder.get(os.path.realpath(repo.directory), 0)
        elif ready and opencode_answers:
            sessions = session_count(services, str(repo.directory))
            # One silence is enough: do not wait a timeout per repo for a server that is down.
            opencode_answers = sessions is not None
        head, changes = _git_state(repo) if ready else (None, None)
        kinds = transfers.get(repo.id, {})
        rows.append(
            {
                "id": repo.id,
                "name": repo.name,
                "branch": repo.branch,
                "status": MISSING if missing else repo.status,
                # Hidden again for rows stored before origins were stored without passwords.
                "error": missing or hide_credentials(repo.error),
                "directory": str(repo.directory),
                "originUrl": hide_credentials(repo.origin_url),
                "head": head,
                "uncommittedChanges": changes,
                "tuisAttached": services.streams.attached(str(repo.directory)),
                "lastPush": _transfer(kinds.get("push"), now),
                "lastPull": _transfer(kinds.get("pull"), now),
                "opencodeSessions": sessions,
            }
        )
    return rows
