"""Questions the Manager asks its OpenCode directly: for the console's pages (never through
the browser) and for a pull, which says when an agent is still at work.

The same endpoint and credentials the proxy uses; a short timeout, and None for "OpenCode
did not answer", which the pages show as "—".
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from typing import Any
from urllib.parse import urlencode

TIMEOUT = 2.0
# OpenCode lists 100 sessions unless told otherwise, in either list: a repo with more showed
# 100. The list across folders comes in pages, each naming the next (x-next-cursor).
SESSIONS_LISTED = "100000"
SESSIONS_PAGE = "1000"


def get_json(
    services: Any, path: str, params: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> Any:
    answer = _get(services, path, params, timeout)
    return answer[0] if answer is not None else None


def _get(
    services: Any, path: str, params: dict[str, str] | None, timeout: float
) -> tuple[Any, http.client.HTTPMessage] | None:
    """The decoded body and the headers of a 200, or None."""
    upstream = services.opencode
    endpoint = upstream.endpoint if upstream is not None else None
    if endpoint is None or upstream.state not in ("running", "external"):
        return None
    target = endpoint.base_path + path + (f"?{urlencode(params)}" if params else "")
    connection_type = (
        http.client.HTTPSConnection if endpoint.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(endpoint.host, endpoint.port, timeout=timeout)
    try:
        connection.request(
            "GET",
            target,
            headers={"Authorization": endpoint.authorization, "Accept": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return json.loads(body), response.headers
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def opencode_version(services: Any) -> str | None:
    health = get_json(services, "/global/health")
    return health.get("version") if isinstance(health, dict) else None


def session_count(services: Any, directory: str) -> int | None:
    sessions = get_json(services, "/session", {"directory": directory, "limit": SESSIONS_LISTED})
    return len(sessions) if isinstance(sessions, list) else None


def session_counts(services: Any) -> dict[str, int] | None:
    """How many sessions each folder has, for every folder OpenCode has sessions in (keyed
    by the folder's real path: OpenCode resolves symlinks), or None.

    One list across all folders (``/experimental/session``, in OpenCode 1.18) in place of
    one ``/session?directory=`` per repo: the same counts (archived sessions and those of
    subagents included, a subfolder's not), for one request instead of hundreds, which
    cost OpenCode seconds of CPU per poll of the console. None when that list is not
    there (another OpenCode version) or OpenCode does not answer: ask per folder then.
    """
    counts: Counter[str] = Counter()
    params = {"archived": "true", "limit": SESSIONS_PAGE}
    while True:
        answer = _get(services, "/experimental/session", params, TIMEOUT)
        if answer is None or not isinstance(answer[0], list):
            return None
        sessions, headers = answer
        counts.update(
            s["directory"]
            for s in sessions
            if isinstance(s, dict) and isinstance(s.get("directory"), str)
        )
        cursor = headers.get("x-next-cursor")
        if not cursor or not sessions or cursor == params.get("cursor"):
            return dict(counts)
        params["cursor"] = cursor


def busy_sessions(services: Any, directory: str, timeout: float = 0.5) -> int | None:
    """How many of the repo's sessions are running a turn (an agent at work), or None."""
    statuses = get_json(services, "/session/status", {"directory": directory}, timeout)
    if not isinstance(statuses, dict):
        return None
    return sum(
        1
        for status in statuses.values()
        if isinstance(status, dict) and status.get("type") != "idle"
    )
