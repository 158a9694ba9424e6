"""Every spelling of an OpenCode event stream counts for ``inUse`` and ``--max-streams``, and
``token rotate`` ends the streams of the old token: against the real ``opencode serve``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests

from tests.support import proctree
from tests.support.auth import bearer
from tests.support.git import make_repo
from tests.support.processes import RunningManager
from tests.support.sse import EventStream

pytestmark = pytest.mark.slow

# What OpenCode 1.18.33 streams events on, as its router reads paths (FIELD-NOTES).
SPELLINGS = [
    "/event",
    "/global/event",
    "/api/event",
    "/api/session/{session}/event",
    "/EVENT",
    "/%65vent",
    "/event/",
    "//event",
    "/event;x",
    "/global//event",
]


@dataclass
class Project:
    manager: RunningManager
    directory: str
    repo_id: int
    session: str

    def in_use(self) -> bool:
        head = requests.get(
            f"{self.manager.url}/api/internal/repo-mirror/{self.repo_id}/head",
            headers=bearer(self.manager.token),
            timeout=10,
        )
        return bool(head.json()["inUse"])


def _until(predicate, timeout: float = 15) -> bool:  # type: ignore[no-untyped-def]
    return proctree.wait_until(predicate, timeout=timeout)


@pytest.fixture(scope="module")
def live_serve_args() -> tuple[str, ...]:
    return ("--max-streams", "1")


@pytest.fixture(scope="module")
def project(live: RunningManager, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A repo on the ``live`` Manager (one stream allowed), with an OpenCode session."""
    manager = live
    source = make_repo(tmp_path_factory.mktemp("spellings") / "source")
    manager.cli("repo", "add", str(source), "--name", "project")
    repo = requests.get(
        f"{manager.url}/api/internal/opencode-workspaces",
        headers=bearer(manager.token),
        timeout=10,
    ).json()["workspaces"][0]
    session = requests.post(
        f"{manager.url}/api/opencode-proxy/session",
        params={"directory": repo["directory"]},
        json={},
        headers=bearer(manager.token),
        timeout=30,
    )
    assert session.status_code == 200, session.text
    return Project(manager, repo["directory"], int(repo["repoId"]), session.json()["id"])


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_an_event_stream_counts(project, spelling):
    manager = project.manager
    path = spelling.format(session=project.session)
    stream = EventStream(
        manager.url,
        f"/api/opencode-proxy{path}?directory={quote(project.directory)}",
        bearer(manager.token),
    )
    try:
        assert _until(project.in_use), f"{path} did not make the repo in use"
        # It holds the one stream --max-streams 1 allows.
        refused = requests.get(
            f"{manager.url}/api/opencode-proxy/event",
            params={"directory": "/elsewhere"},
            headers=bearer(manager.token),
            timeout=10,
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "too_many_streams"
    finally:
        stream.close()
    assert _until(lambda: not project.in_use()), f"{path} stayed in use after it closed"


def test_token_rotate_ends_streams_opened_with_the_old_token(project):
    manager = project.manager
    assert _until(lambda: not project.in_use())
    stream = EventStream(
        manager.url,
        f"/api/opencode-proxy/event?directory={quote(project.directory)}",
        bearer(manager.token),
    )
    try:
        stream.read_until(b"server.connected")
        manager.token = manager.cli("token", "rotate").stdout.strip()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            stream.read_until(b"never sent", timeout=20)
        assert time.monotonic() - started < 5
        assert _until(lambda: not project.in_use())
    finally:
        stream.close()
