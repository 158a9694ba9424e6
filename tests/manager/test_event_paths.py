"""How the proxy reads a path to decide whether it is an OpenCode event stream
(``manager.proxy.events``); the real OpenCode's answers are in test_event_stream_spellings."""

from __future__ import annotations

import pytest

from manager.proxy.events import canonical_event_path, is_event_stream_type


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/event", "/event"),
        ("/EVENT", "/event"),
        ("/%65vent", "/event"),
        ("/event/", "/event"),
        ("//event", "/event"),
        ("/event;x", "/event"),
        ("/event;x/y", "/event"),
        ("/global//event", "/global/event"),
        ("/Global/Event/", "/global/event"),
        ("/API/event", "/api/event"),
        ("/api//event", "/api/event"),
        ("/api/session/ses_AbC/event", "/api/session/ses_AbC/event"),
        ("/api/SESSION/ses_AbC/%45vent", "/api/session/ses_AbC/event"),
    ],
)
def test_spellings_opencode_streams_on_are_read_as_its_router_reads_them(path, canonical):
    assert canonical_event_path(path) == canonical


@pytest.mark.parametrize(
    "path",
    # Not stream routes; an encoded slash is no separator (OpenCode 1.18.33 answers
    # /%2Fevent and /event%2F with its web app).
    ["/session", "/%2Fevent", "/event%2F", "/events", "/x/event", "/api/session/a%2Fb/event"],
)
def test_other_paths_are_not_event_streams(path):
    assert canonical_event_path(path) is None


def test_an_answer_is_a_stream_by_its_content_type():
    assert is_event_stream_type([("Content-Type", "text/event-stream; charset=utf-8")])
    assert not is_event_stream_type([("Content-Type", "application/json")])
    assert not is_event_stream_type([])
