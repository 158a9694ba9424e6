"""Which proxied paths are OpenCode event streams, however they are spelled.

Every event stream must hold a lease (a repo's ``inUse``, ``--max-streams``), and OpenCode's
router is lenient: measured with OpenCode 1.18.33 (FIELD-NOTES), ``/EVENT``, ``/%65vent``,
``/event/``, ``//event``, ``/event;x`` and ``/global//event`` all stream, as do
``/api/event`` and ``/api/session/<id>/event``; ``/%2Fevent`` and ``/./event`` do not. So a
path is reduced the way that router reads it (cut at ``;``, empty segments dropped, each
segment percent-decoded, case ignored) and compared with the stream routes; the proxy then
forwards the canonical spelling, so that what it counted is what OpenCode serves. An answer
that streams all the same (``Content-Type: text/event-stream``) is counted when it begins.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

ROUTES = frozenset({("event",), ("global", "event"), ("api", "event")})
SESSION_ROUTE = ("api", "session", None, "event")  # None: the session id, kept as sent
EVENT_STREAM_TYPE = "text/event-stream"


def canonical_event_path(path: str) -> str | None:
    """The route OpenCode serves an event stream on for ``path`` (raw, without query), or
    None when ``path`` is not an event stream."""
    lowered = path.lower()
    if "event" not in lowered and "%" not in path:  # nearly every request: no work
        return None
    segments = [unquote(segment) for segment in path.split(";", 1)[0].split("/") if segment]
    words = tuple(segment.lower() for segment in segments)
    if words in ROUTES:
        return "/" + "/".join(words)
    if (
        len(words) == len(SESSION_ROUTE)
        and words[0] == SESSION_ROUTE[0]
        and words[1] == SESSION_ROUTE[1]
        and words[3] == SESSION_ROUTE[3]
        and "/" not in segments[2]
    ):
        return f"/api/session/{quote(segments[2], safe='')}/event"
    return None


def is_event_stream_type(headers: list[tuple[str, str]]) -> bool:
    for name, value in headers:
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower() == EVENT_STREAM_TYPE
    return False
