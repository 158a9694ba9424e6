"""Health: OpenCode's state, the Manager's version, free disk and the end of both logs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from flask import Blueprint

from manager.ask_opencode import opencode_version
from manager.web.render import page
from manager.web.state import services
from ocm import __version__

bp = Blueprint("web_health", __name__)
LOG_LINES = 40
LOG_TAIL_BYTES = 64 * 1024


def tail(path: Path, lines: int = LOG_LINES) -> list[str]:
    """The last ``lines`` lines of a log, reading only its end."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    kept = text.splitlines()
    if len(kept) > lines or size > LOG_TAIL_BYTES:
        kept = kept[1:]  # the first may be cut in the middle
    return kept[-lines:]


def _opencode(svc: Any) -> dict[str, Any]:
    upstream = svc.opencode
    if upstream is None:
        return {"state": "disabled", "version": None, "restarts": None, "uptimeSeconds": None}
    since = getattr(upstream, "running_since", None)
    running = upstream.state in ("running", "external")
    return {
        "state": upstream.state,
        "version": opencode_version(svc) if running else None,
        "restarts": getattr(upstream, "restarts", None),
        "uptimeSeconds": int(time.time() - since) if since and running else None,
    }


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@bp.get("/health")
def health() -> Any:
    svc = services()
    settings = svc.settings
    disk = shutil.disk_usage(settings.data_dir)
    data = {
        "managerVersion": __version__,
        "opencode": _opencode(svc),
        "dataDir": str(settings.data_dir),
        "diskFreeBytes": disk.free,
        "diskTotalBytes": disk.total,
        "tuisAttached": svc.streams.total(),
        "logs": {
            "manager.log": tail(settings.logs_dir / "manager.log"),
            "opencode.log": tail(settings.logs_dir / "opencode.log"),
        },
    }
    return page("health.html", data, duration=duration)
