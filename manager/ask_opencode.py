"""Questions the Manager asks its OpenCode directly: for the console's pages (never through
the browser) and for a pull, which says when an agent is still at work.

The same endpoint and credentials the proxy uses; a short timeout, and None for "OpenCode
did not answer", which the pages show as "—".
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode

TIMEOUT = 2.0


def get_json(
    services: Any, path: str, params: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> Any:
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
        return json.loads(body)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def opencode_version(services: Any) -> str | None:
    health = get_json(services, "/global/health")
    return health.get("version") if isinstance(health, dict) else None


def session_count(services: Any, directory: str) -> int | None:
    sessions = get_json(services, "/session", {"directory": directory})
    return len(sessions) if isinstance(sessions, list) else None


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
