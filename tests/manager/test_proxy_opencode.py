"""The proxy in front of the real ``opencode serve`` that the Manager starts itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support import proctree
from tests.support.auth import basic, bearer
from tests.support.git import make_repo
from tests.support.processes import RunningManager
from tests.support.sse import EventStream

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("repos") / "project").resolve()


def opencode_pid(manager: RunningManager) -> int:
    pids = [
        pid for pid in proctree.children(manager.process.pid) if "serve" in proctree.cmdline(pid)
    ]
    assert len(pids) == 1, pids
    return pids[0]


def test_sessions_through_the_proxy_with_bearer_and_basic(live, repo_dir):
    directory = str(repo_dir)
    events = EventStream(
        live.url, f"/api/opencode-proxy/event?directory={directory}", bearer(live.token)
    )
    assert events.status() == 200
    events.read_until(b"server.connected")
    created = []
    for auth in (bearer(live.token), basic(live.token)):
        response = requests.post(
            f"{live.url}/api/opencode-proxy/session",
            params={"directory": directory},
            json={},
            headers=auth,
            timeout=30,
        )
        assert response.status_code == 200, response.text
        session = response.json()
        assert session["directory"] == directory
        created.append(session["id"])
    listed = requests.get(
        f"{live.url}/api/opencode-proxy/session",
        params={"directory": directory},
        headers=basic(live.token),
        timeout=30,
    )
    assert listed.status_code == 200
    assert set(created) <= {item["id"] for item in listed.json()}
    for session_id in created:
        events.read_until(b'"session.created"')
        events.read_until(session_id.encode(), timeout=10)
    events.close()


def test_a_compressed_response_is_the_one_opencode_sent(live, repo_dir):
    pid = opencode_pid(live)
    password = proctree.environ(pid)["OPENCODE_SERVER_PASSWORD"]
    port = proctree.cmdline(pid)[proctree.cmdline(pid).index("--port") + 1]
    query = {"directory": str(repo_dir)}
    direct = requests.get(
        f"http://127.0.0.1:{port}/global/health", auth=("opencode", password), timeout=10
    )
    assert direct.status_code == 200
    headers = {**bearer(live.token), "Accept-Encoding": "gzip"}
    through = requests.get(
        f"{live.url}/api/opencode-proxy/provider",
        params=query,
        headers=headers,
        stream=True,
        timeout=60,
    )
    body = through.raw.read(decode_content=False)
    assert through.headers.get("Content-Encoding") == "gzip"
    assert through.headers["Content-Length"] == str(len(body))
    original = requests.get(
        f"http://127.0.0.1:{port}/provider",
        params=query,
        headers={"Accept-Encoding": "gzip"},
        auth=("opencode", password),
        stream=True,
        timeout=60,
    )
    assert body == original.raw.read(decode_content=False)
    assert password not in repr(through.headers)


def test_many_streams_at_once_and_all_released_after(live, repo_dir):
    pid = live.process.pid
    directory = str(repo_dir)
    requests.get(
        f"{live.url}/api/opencode-proxy/session",
        params={"directory": directory},
        headers=bearer(live.token),
        timeout=30,
    )
    # The warm-up's client connection closes a moment after its answer: count after that.
    assert proctree.wait_until(lambda: proctree.socket_count(pid) <= 3, timeout=20), (
        proctree.socket_count(pid)
    )
    threads_before = proctree.thread_count(pid)
    sockets_before = proctree.socket_count(pid)

    streams = [
        EventStream(
            live.url,
            f"/api/opencode-proxy/global/event?directory={directory}&n={i}",
            basic(live.token),
        )
        for i in range(60)
    ]
    for stream in streams:
        stream.read_until(b"server.connected")
    # Every stream holds two sockets in the Manager: the client's and OpenCode's.
    assert proctree.socket_count(pid) >= 2 * len(streams)
    for _ in range(3):
        health = requests.get(f"{live.url}/api/health", timeout=10)
        assert health.json()["opencode"]["state"] == "running"
        listed = requests.get(
            f"{live.url}/api/opencode-proxy/session",
            params={"directory": directory},
            headers=bearer(live.token),
            timeout=10,
        )
        assert listed.status_code == 200

    for stream in streams:
        stream.close()
    # Back to where it started, give or take the idle keep-alive connections to OpenCode
    # that the ordinary requests above left in the pool.
    assert proctree.wait_until(
        lambda: proctree.socket_count(pid) <= sockets_before + 2, timeout=30
    ), (proctree.socket_count(pid), sockets_before)
    assert proctree.thread_count(pid) == threads_before
    # The freed stream slots are usable again at once.
    again = EventStream(live.url, "/api/opencode-proxy/event", bearer(live.token))
    assert again.status() == 200
    again.close()


def test_a_provider_key_given_through_the_proxy_stays_with_the_managers_opencode(
    live: RunningManager,
) -> None:
    """What `/connect` in an attached TUI sends (README, "Models and provider keys"): the key
    reaches the Manager's OpenCode, which keeps it in the Manager account's data dir
    (``~/.local/share/opencode/auth.json``, mode 0600) for every TUI, and forgets it when
    asked. A made-up provider id, so that no other test's model choice changes."""
    key = "sk-ocm-test-" + "k" * 24
    url = f"{live.url}/api/opencode-proxy/auth/ocm-test-provider"
    stored = live.data_dir.parent / "home" / ".local" / "share" / "opencode" / "auth.json"
    given = requests.put(
        url, json={"type": "api", "key": key}, headers=bearer(live.token), timeout=30
    )
    assert given.status_code == 200 and given.json() is True, given.text
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())["ocm-test-provider"] == {"type": "api", "key": key}
    assert key not in live.log()
    forgotten = requests.delete(url, headers=bearer(live.token), timeout=30)
    assert forgotten.status_code == 200, forgotten.text
    assert "ocm-test-provider" not in json.loads(stored.read_text())
