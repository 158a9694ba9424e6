"""The connection guard on the second listener, OpenCode's web app (``--web-app-port``).

The web app shares waitress' event loop, threads and connection limit with the Manager's
main listener, so a client there that sends nothing, uploads without a sign-in, floods it
with idle connections or stops reading would cost the main listener too. There a browser
shows its credentials with the console's sign-in cookie, not the token. A real Manager with
a recording stand-in for OpenCode (``tests.support.upstream``), over raw sockets.
"""

from __future__ import annotations

import json
import os
import resource
import socket
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.support import proctree, rawhttp
from tests.support.auth import bearer
from tests.support.processes import RunningManager
from tests.support.upstream import RecordingUpstream
from tests.web.conftest import cookie_name

AUTHORISED_GET = "/api/internal/opencode-workspaces"
KIB = 1024
MIB = 1024**2
# Small enough that a few hundred sockets reach the connection limit, which the Manager
# derives from the descriptors it may open (manager.server).
FEW_DESCRIPTORS = 640


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as recording:
        yield recording


@pytest.fixture
def web_manager(
    manager_factory: Callable[..., RunningManager], upstream: RecordingUpstream
) -> Callable[..., RunningManager]:
    def start(*extra: str, **kwargs: object) -> RunningManager:
        env = os.environ | {"OCM_OPENCODE_PASSWORD": "opencode-secret-" + "z" * 24}
        return manager_factory("--opencode-url", upstream.url, *extra, env=env, **kwargs)

    return start


def sign_in(manager: RunningManager) -> str:
    """The ``Cookie`` header of a fresh sign-in on the console, as a browser would send it."""
    answer = requests.post(
        f"{manager.url}/signin",
        data={"token": manager.token},
        headers={"Origin": manager.url, "Accept": "application/json"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    name = cookie_name(manager)
    return f"{name}={answer.cookies[name]}"


def upload_head(url: str, length: int, cookie: str | None = None) -> bytes:
    return (
        b"POST /session HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n%sContent-Type: application/json"
        b"\r\nContent-Length: %d\r\n\r\n"
        % (
            url.removeprefix("http://").encode(),
            url.encode(),
            f"Cookie: {cookie}\r\n".encode() if cookie else b"",
            length,
        )
    )


def test_a_large_body_without_a_sign_in_is_refused_before_it_is_read(web_manager, upstream):
    manager = web_manager()
    url = manager.web_app_url()
    with rawhttp.connect(url) as sock:
        sock.sendall(upload_head(url, 1024 * MIB))
        answer, sent = rawhttp.upload_until_answered(sock, 1024 * MIB)
    assert sent < 64 * MIB, sent
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert json.loads(body)["error"] == "not_signed_in"
    assert b"connection: close" in head.lower()
    # A token is no sign-in here: the web app is for browsers.
    with rawhttp.connect(url) as sock:
        sock.sendall(
            upload_head(url, 1024 * MIB).replace(
                b"\r\n\r\n", b"\r\nAuthorization: Bearer %s\r\n\r\n" % manager.token.encode()
            )
        )
        answer, sent = rawhttp.upload_until_answered(sock, 1024 * MIB)
    assert answer.startswith(b"HTTP/1.1 401") and sent < 64 * MIB, (answer[:300], sent)
    assert not upstream.requests

    # A signed-in browser's large body is read and reaches OpenCode whole.
    cookie = sign_in(manager)
    body = json.dumps({"text": "x" * (200 * KIB)}).encode()
    with rawhttp.connect(url) as sock:
        sock.sendall(upload_head(url, len(body), cookie) + body)
        answer = rawhttp.read_one_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert upstream.last().body_length == len(body)


@pytest.mark.slow
def test_a_silent_connection_is_closed_but_a_signed_in_one_stays(web_manager):
    manager = web_manager("--head-timeout", "1")
    url = manager.web_app_url()
    cookie = sign_in(manager)
    request = b"GET /session HTTP/1.1\r\nHost: a\r\nCookie: %s\r\n\r\n" % cookie.encode()
    with rawhttp.connect(url) as silent, rawhttp.connect(url) as signed_in:
        signed_in.sendall(request)
        assert rawhttp.read_one_answer(signed_in).startswith(b"HTTP/1.1 200")
        # Waitress alone would keep it for two minutes.
        assert rawhttp.closed_by_peer(silent, timeout=10)
        # The connection that showed a sign-in is still there for its next request.
        signed_in.sendall(request)
        assert rawhttp.read_one_answer(signed_in).startswith(b"HTTP/1.1 200")


@pytest.fixture
def few_descriptors() -> Callable[[], None]:
    """For the Manager's process: a hard limit on open files it cannot raise."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FEW_DESCRIPTORS, FEW_DESCRIPTORS))

    return limit


@pytest.mark.slow
def test_a_flood_of_idle_connections_does_not_lock_a_signed_in_browser_out(
    web_manager, few_descriptors
):
    # A head timeout longer than the test: only making room at the limit can let anyone in.
    manager = web_manager(
        "--threads", "4", "--max-streams", "4", "--head-timeout", "120", preexec_fn=few_descriptors
    )
    url = manager.web_app_url()
    cookie = sign_in(manager)
    flood: list[socket.socket] = []
    try:
        for _ in range(400):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(rawhttp.address(url))
            flood.append(sock)
        # Far more idle connections are open than the Manager may hold at once.
        assert proctree.wait_until(
            lambda: proctree.socket_count(manager.process.pid) > FEW_DESCRIPTORS // 4, timeout=5
        )
        answer = requests.get(f"{url}/session", headers={"Cookie": cookie}, timeout=5)
        assert answer.status_code == 200, answer.text
        # The main listener shares the limit: the flood on the web app's port costs it nothing.
        authorised = requests.get(
            f"{manager.url}{AUTHORISED_GET}", headers=bearer(manager.token), timeout=5
        )
        assert authorised.status_code == 200, authorised.text
        assert "at the connection limit" in manager.log()
    finally:
        for sock in flood:
            sock.close()


@pytest.mark.slow
def test_an_answer_the_browser_stopped_reading_is_cut(web_manager):
    manager = web_manager("--stall-timeout", "2")
    url = manager.web_app_url()
    cookie = sign_in(manager)
    sleeper = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect(rawhttp.address(url))
    try:
        # 24 MB: more than socket buffers and waitress' output buffer hold.
        sleeper.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nCookie: %s\r\n\r\n" % cookie.encode())
        assert sleeper.recv(1024).startswith(b"HTTP/1.1 200")
        assert proctree.wait_until(lambda: "read nothing" in manager.log(), timeout=30)
    finally:
        sleeper.close()
