"""HTTP details of the proxy against a recording upstream, over raw sockets: answers to HEAD,
100-continue behind a relayed request, half-closed clients, hostile request targets, streams
the path does not name, and streams of a token that was rotated away."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.manager.conftest import proxy_url, start_proxied
from tests.support.auth import bearer
from tests.support.processes import RunningManager
from tests.support.sse import EventStream


def _connect(manager: RunningManager) -> socket.socket:
    host, port = manager.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=15)


def _read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while block := sock.recv(65536):
        received += block
    return received


def _auth(manager: RunningManager) -> bytes:
    return b"Authorization: Bearer %s\r\n" % manager.token.encode()


def test_errors_to_head_carry_no_body(proxied):
    for request in (
        b"HEAD /api/opencode-proxy/session HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        b"HEAD /api/opencode-proxy/pty HTTP/1.1\r\nHost: m\r\n%sUpgrade: websocket\r\n"
        b"Connection: close\r\n\r\n" % _auth(proxied),
    ):
        with _connect(proxied) as sock:
            sock.sendall(request)
            received = _read_until_closed(sock)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 401", b"HTTP/1.1 501")), received[:300]
        assert body == b"", received[:300]


def test_a_pipelined_expect_100_continue_behind_a_relayed_request_gets_its_100(proxied, upstream):
    auth = _auth(proxied)
    with _connect(proxied) as sock:
        sock.sendall(
            b"GET /api/opencode-proxy/first HTTP/1.1\r\nHost: m\r\n%s\r\n" % auth
            + b"POST /api/opencode-proxy/second HTTP/1.1\r\nHost: m\r\n%s" % auth
            + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        received = b""
        sock.settimeout(5)
        while b"100 Continue" not in received:
            block = sock.recv(65536)
            assert block, received
            received += block
        sock.sendall(b"{}")
        sock.settimeout(15)
        while received.count(b"HTTP/1.1 200") < 2:
            block = sock.recv(65536)
            assert block, received
            received += block
    assert upstream.last().target == "/second"
    assert upstream.last().body_length == 2


@pytest.mark.slow
def test_a_client_that_half_closes_still_gets_its_answer(proxied, upstream):
    before = upstream.recorder.abandoned
    with _connect(proxied) as sock:
        sock.sendall(b"GET /api/opencode-proxy/slow HTTP/1.1\r\nHost: m\r\n%s\r\n" % _auth(proxied))
        sock.shutdown(socket.SHUT_WR)  # done sending; waits for the answer (10 s upstream)
        received = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200"), received[:300]
    assert upstream.recorder.abandoned == before


@pytest.mark.parametrize("byte", [b"\t", b"\x00", b"\x7f"], ids=["TAB", "NUL", "DEL"])
def test_raw_control_characters_in_the_target_are_a_400_and_never_forwarded(
    proxied, upstream, byte
):
    before = len(upstream.requests)
    with _connect(proxied) as sock:
        sock.sendall(
            b"GET /api/opencode-proxy/a%sb HTTP/1.1\r\nHost: m\r\n%s\r\n" % (byte, _auth(proxied))
        )
        received = _read_until_closed(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received[:300]
    assert json.loads(body)["error"] == "bad_request"
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    "body", [b"", b"x" * 300_000], ids=["relayed on the event loop", "on a worker"]
)
def test_a_non_ascii_path_reaches_opencode_as_sent(proxied, upstream, body):
    for prefix, rest in (
        ("/api/opencode-proxy", "/caf%C3%A9"),
        ("/api/%6Fpencode-proxy", "/caf%C3%A9"),
        ("/api/opencode%2Dproxy", "/caf%c3%a9/a%2Fb?q=%E2%9C%93"),
        ("/api/opencode-proxy", "/%F0%9F%90%8D/x%2Fy"),
    ):
        with _connect(proxied) as sock:
            sock.sendall(
                b"POST %s%s HTTP/1.1\r\nHost: m\r\n%sContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s"
                % (prefix.encode(), rest.encode(), _auth(proxied), len(body), body)
            )
            received = _read_until_closed(sock)
        assert received.startswith(b"HTTP/1.1 200"), received[:300]
        assert upstream.last().target == rest


def test_a_stream_the_path_does_not_name_still_counts(upstream, tmp_path):
    manager = start_proxied(tmp_path, upstream.url, "--max-streams", "1")
    try:
        unlisted = EventStream(
            manager.url, "/api/opencode-proxy/unlisted-stream?directory=/d", bearer(manager.token)
        )
        unlisted.read_until(b"server.connected")
        refused = requests.get(
            proxy_url(manager, "/event?directory=/e"), headers=bearer(manager.token), timeout=10
        )
        assert refused.status_code == 503
        assert refused.json()["error"] == "too_many_streams"
        unlisted.close()
    finally:
        manager.stop()


def test_token_rotate_ends_the_streams_of_the_old_token_at_once(upstream, tmp_path):
    manager = start_proxied(tmp_path, upstream.url)
    try:
        stream = EventStream(
            manager.url, "/api/opencode-proxy/event?directory=/r", bearer(manager.token)
        )
        stream.read_until(b"server.connected")
        new_token = manager.cli("token", "rotate").stdout.strip()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            stream.read_until(b"never sent", timeout=10)
        assert time.monotonic() - started < 5
        stream.close()
        fresh = EventStream(
            manager.url, "/api/opencode-proxy/event?directory=/r", bearer(new_token)
        )
        fresh.read_until(b"server.connected")
        fresh.close()
        old = requests.get(
            proxy_url(manager, "/session"), headers=bearer(manager.token), timeout=10
        )
        assert old.status_code == 401
    finally:
        manager.stop()
