"""The proxy against a recording upstream (``--opencode-url``): exactly what reaches OpenCode
and what comes back — credentials, raw paths, bodies, headers, streams and their ends."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
import zlib
from http import HTTPStatus

import pytest
import requests

from tests.manager.conftest import proxy_url, start_proxied
from tests.support.auth import basic, bearer
from tests.support.processes import RunningManager
from tests.support.sse import EventStream
from tests.support.upstream import (
    BIG_BODY,
    CHUNKS,
    GZIP_BODY,
    GZIP_PLAIN,
    PASSWORD,
    UNTIL_CLOSE_BODY,
)

UPSTREAM_AUTH = basic(PASSWORD)["Authorization"]


def test_missing_or_wrong_token_gets_401_and_nothing_reaches_opencode(proxied, upstream):
    before = len(upstream.requests)
    for headers in ({}, bearer("wrong"), basic("wrong"), bearer(PASSWORD), basic(PASSWORD)):
        response = requests.post(
            proxy_url(proxied, "/session?directory=/x"), headers=headers, json={}, timeout=10
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    assert len(upstream.requests) == before


def test_token_is_swapped_for_opencodes_credentials_both_ways(proxied, upstream):
    for headers in (bearer(proxied.token), basic(proxied.token, user="someone")):
        response = requests.post(
            proxy_url(proxied, "/session?directory=/srv/repo"),
            headers={**headers, "Cookie": "c=1"},
            json={"t": 1},
            timeout=10,
        )
        assert response.status_code == 200
        seen = upstream.last()
        assert seen.target == "/session?directory=/srv/repo"
        assert seen.header("Authorization") == UPSTREAM_AUTH
        assert seen.header("Cookie") == "c=1"  # end-to-end headers pass
        everything = repr(seen.headers) + seen.target
        assert proxied.token not in everything
        assert base64.b64encode(proxied.token.encode()).decode()[:20] not in everything
        assert PASSWORD not in repr(response.headers) + response.text


def test_opencode_refusing_our_password_is_a_502_without_its_challenge(proxied):
    response = requests.get(
        proxy_url(proxied, "/challenge"), headers=bearer(proxied.token), timeout=10
    )
    assert response.status_code == 502
    assert response.json()["error"] == "opencode_auth_failed"
    assert "WWW-Authenticate" not in response.headers


def test_raw_path_and_query_arrive_unchanged(proxied, upstream):
    rest = "/file/a%2Fb%20c/%E2%9C%93?path=src%2Fmain.py&directory=%2Ftmp%2Fr&q=a+b&q=%2B&empty="
    response = requests.get(proxy_url(proxied, rest), headers=bearer(proxied.token), timeout=10)
    assert response.status_code == 200
    assert upstream.last().target == rest
    # The bare prefix is the upstream root, and a double slash is not merged or redirected.
    requests.get(proxy_url(proxied, ""), headers=bearer(proxied.token), timeout=10)
    assert upstream.last().target == "/"
    requests.get(proxy_url(proxied, "//twice"), headers=bearer(proxied.token), timeout=10)
    assert upstream.last().target == "//twice"


def test_a_10_mb_body_arrives_intact(proxied, upstream):
    body = os.urandom(10 * 1024 * 1024)
    response = requests.put(
        proxy_url(proxied, "/upload?x=1"),
        data=body,
        headers={**bearer(proxied.token), "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert response.status_code == 200
    seen = upstream.last()
    assert (seen.method, seen.body_length) == ("PUT", len(body))
    assert seen.body_sha256 == hashlib.sha256(body).hexdigest()
    assert seen.header("Content-Length") == str(len(body))


def test_a_chunked_upload_arrives_with_its_length(proxied, upstream):
    parts = [os.urandom(300_000) for _ in range(4)]
    response = requests.post(
        proxy_url(proxied, "/upload"), data=iter(parts), headers=bearer(proxied.token), timeout=60
    )
    assert response.status_code == 200
    seen = upstream.last()
    assert seen.body_sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
    assert seen.header("Transfer-Encoding") is None
    assert seen.header("Content-Length") == str(sum(map(len, parts)))


def test_a_gzip_response_arrives_byte_identical(proxied, upstream):
    response = requests.get(
        proxy_url(proxied, "/gzip"),
        stream=True,
        headers={**bearer(proxied.token), "Accept-Encoding": "gzip"},
        timeout=10,
    )
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(GZIP_BODY))
    assert raw == GZIP_BODY
    assert zlib.decompress(raw, 16 + zlib.MAX_WBITS) == GZIP_PLAIN
    # No Accept-Encoding from the client: none is invented on the way.
    requests.get(
        proxy_url(proxied, "/plain"),
        headers={**bearer(proxied.token), "Accept-Encoding": ""},
        timeout=10,
    )
    assert upstream.last().header("Accept-Encoding") in (None, "")


def test_hop_by_hop_headers_are_dropped_both_ways(proxied, upstream):
    headers = {
        **bearer(proxied.token),
        "Connection": "keep-alive, X-Private",
        "X-Private": "hop",
        "Proxy-Authorization": "Basic eDp5",
        "TE": "trailers",
        "Keep-Alive": "timeout=9",
        "X-End-To-End": "yes",
    }
    response = requests.get(proxy_url(proxied, "/status/200"), headers=headers, timeout=10)
    seen = upstream.last()
    for name in ("X-Private", "Proxy-Authorization", "TE", "Keep-Alive"):
        assert seen.header(name) is None, name
    assert seen.header("X-End-To-End") == "yes"
    assert response.status_code == 200
    assert "X-Hop" not in response.headers
    assert "Keep-Alive" not in response.headers
    assert response.headers["X-End-To-End"] == "kept"
    assert response.headers["Set-Cookie"] == "a=1; Path=/"


def test_methods_and_statuses_pass_unchanged_and_connections_are_reused(proxied, upstream):
    session = requests.Session()
    session.headers.update(bearer(proxied.token))
    before = len(upstream.requests)
    for method, status in (
        ("GET", 418),
        ("DELETE", 204),
        ("PATCH", 404),
        ("OPTIONS", 200),
        ("HEAD", 200),
        ("GET", 304),
        ("HEAD", 500),
        ("PUT", 201),
    ) * 3:
        response = session.request(method, proxy_url(proxied, f"/status/{status}"), timeout=10)
        assert response.status_code == status
        assert response.reason == HTTPStatus(status).phrase  # OpenCode's own phrase
        assert upstream.last().method == method
    # HEAD, 204 and 304 bodies never run: their upstream connection was still handed back.
    ports = {r.client_port for r in upstream.requests[before:]}
    assert len(ports) <= 2


def test_event_stream_is_relayed_and_its_upstream_closed_when_the_client_leaves(proxied, upstream):
    recorder = upstream.recorder
    closed_before = recorder.closed_streams
    stream = EventStream(
        proxied.url, "/api/opencode-proxy/event?directory=/srv/repo", bearer(proxied.token)
    )
    assert stream.status() == 200
    stream.read_until(b"server.connected")
    assert b"text/event-stream" in stream.buffer
    assert recorder.wait_for(lambda r: r.open_streams >= 1)
    stream.close()
    # The recording upstream never writes again, so only the proxy's disconnect watcher can
    # end this stream.
    assert recorder.wait_for(lambda r: r.closed_streams > closed_before)


def test_websocket_upgrade_is_a_501(proxied):
    response = requests.get(
        proxy_url(proxied, "/pty/abc/connect"),
        headers={
            **bearer(proxied.token),
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
        timeout=10,
    )
    assert response.status_code == 501
    assert response.json()["error"] == "websocket_unsupported"


def test_stream_limit_answers_503_and_ordinary_requests_still_work(upstream, tmp_path):
    manager = start_proxied(tmp_path, upstream.url, "--max-streams", "3", "--threads", "2")
    try:
        streams = [
            EventStream(
                manager.url,
                f"/api/opencode-proxy/global/event?directory=/d{i}",
                bearer(manager.token),
            )
            for i in range(3)
        ]
        for stream in streams:
            stream.read_until(b"server.connected")
        refused = requests.get(
            proxy_url(manager, "/event?directory=/d9"), headers=bearer(manager.token), timeout=10
        )
        assert refused.status_code == 503
        assert refused.json()["error"] == "too_many_streams"
        assert "--max-streams" in refused.json()["message"]
        # Streams have threads of their own: ordinary calls still answer.
        for _ in range(5):
            ok = requests.get(
                proxy_url(manager, "/session"), headers=bearer(manager.token), timeout=10
            )
            assert ok.status_code == 200
        assert requests.get(f"{manager.url}/api/health", timeout=10).status_code == 200
        streams.pop().close()
        again = None
        for _ in range(100):  # the lease goes once the watcher has seen the hang-up
            again = EventStream(
                manager.url, "/api/opencode-proxy/event?directory=/d9", bearer(manager.token)
            )
            if again.status() == 200:
                break
            again.close()
            again = None
            upstream.recorder.wait_for(lambda r: False, timeout=0.1)
        assert again is not None
        again.close()
        for stream in streams:
            stream.close()
    finally:
        manager.stop()


def test_in_use_follows_event_streams_for_the_repo_directory(upstream, tmp_path, git_repo):
    manager = start_proxied(tmp_path, upstream.url)
    try:
        source = git_repo("project")
        manager.cli("repo", "add", str(source), "--name", "project")
        workspaces = requests.get(
            f"{manager.url}/api/internal/opencode-workspaces",
            headers=bearer(manager.token),
            timeout=10,
        ).json()["workspaces"]
        repo = workspaces[0]
        head_url = f"{manager.url}/api/internal/repo-mirror/{repo['repoId']}/head"

        def in_use() -> bool:
            return bool(
                requests.get(head_url, headers=bearer(manager.token), timeout=10).json()["inUse"]
            )

        assert not in_use()
        for target, headers in (
            (f"/api/opencode-proxy/global/event?directory={repo['directory']}", {}),
            ("/api/opencode-proxy/event", {"x-opencode-directory": repo["directory"]}),
        ):
            stream = EventStream(manager.url, target, {**bearer(manager.token), **headers})
            stream.read_until(b"server.connected")
            assert in_use()
            stream.close()
            assert upstream.recorder.wait_for(lambda r: not in_use())
    finally:
        manager.stop()


def test_without_opencode_the_proxy_answers_503(manager):
    response = requests.get(
        proxy_url(manager, "/session"), headers=bearer(manager.token), timeout=10
    )
    assert response.status_code == 503
    assert response.json()["error"] == "opencode_not_configured"
    assert "--no-opencode" in response.json()["message"]


def test_opencode_down_is_a_502(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        manager = start_proxied(tmp_path, dead)
        try:
            response = requests.get(
                proxy_url(manager, "/session"), headers=bearer(manager.token), timeout=30
            )
            assert response.status_code == 502
            assert response.json()["error"] == "opencode_unreachable"
            health = requests.get(f"{manager.url}/api/health", timeout=10).json()
            assert health["opencode"] == {"state": "external"}
        finally:
            manager.stop()


def _connect(manager: RunningManager) -> socket.socket:
    host, port = manager.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _raw_exchange(manager: RunningManager, request: bytes) -> bytes:
    """Send ``request`` on a new connection and read until the Manager closes it."""
    with _connect(manager) as sock:
        sock.sendall(request)
        received = b""
        while block := sock.recv(65536):
            received += block
    return received


def test_a_chunked_answer_arrives_whole_without_its_trailer(proxied):
    response = requests.get(
        proxy_url(proxied, "/chunked"), headers=bearer(proxied.token), timeout=10
    )
    assert response.status_code == 200
    assert response.content == b"".join(CHUNKS)
    assert "X-Checksum" not in response.headers


def test_an_http_10_client_gets_a_chunked_answer_as_plain_bytes(proxied):
    received = _raw_exchange(
        proxied,
        b"GET /api/opencode-proxy/chunked HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n"
        % proxied.token.encode(),
    )
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"".join(CHUNKS)


def test_an_answer_that_ends_with_its_connection_arrives_whole(proxied):
    response = requests.get(
        proxy_url(proxied, "/until-close"), headers=bearer(proxied.token), timeout=10
    )
    assert response.status_code == 200
    assert response.content == UNTIL_CLOSE_BODY


def test_a_big_answer_to_a_reader_that_waits_arrives_intact(proxied):
    response = requests.get(
        proxy_url(proxied, "/big"), headers=bearer(proxied.token), stream=True, timeout=30
    )
    assert response.status_code == 200
    # While this client reads nothing, the Manager keeps serving everyone else.
    health = requests.get(f"{proxied.url}/api/health", timeout=5)
    assert health.status_code == 200
    other = requests.get(proxy_url(proxied, "/other"), headers=bearer(proxied.token), timeout=5)
    assert other.status_code == 200
    digest = hashlib.sha256()
    for block in response.iter_content(1 << 16):
        digest.update(block)
    assert digest.hexdigest() == hashlib.sha256(BIG_BODY).hexdigest()


def test_an_answer_cut_short_never_reaches_the_client_as_whole(proxied):
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(proxy_url(proxied, "/cut"), headers=bearer(proxied.token), timeout=10)
    received = _raw_exchange(
        proxied,
        b"GET /api/opencode-proxy/cut HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n"
        % proxied.token.encode(),
    )
    assert received.endswith(b"\r\n\r\n0123456789")  # then the Manager closed
    after = requests.get(proxy_url(proxied, "/after"), headers=bearer(proxied.token), timeout=10)
    assert after.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"x" * 300_000],
    ids=["relayed on the event loop", "on a worker (large upload)"],
)
def test_a_chunked_answer_cut_short_is_not_finished_for_the_client(proxied, body):
    received = _raw_exchange(
        proxied,
        b"POST /api/opencode-proxy/chunked-cut HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (proxied.token.encode(), len(body), body),
    )
    assert received.startswith(b"HTTP/1.1 200")
    # The chunk that came, then the Manager closed: no last chunk that would make it whole.
    assert received.endswith(b"\r\n\r\nA\r\n0123456789\r\n")


def test_a_keep_alive_connection_opencode_closed_is_never_an_error(proxied):
    session = requests.Session()
    session.headers.update(bearer(proxied.token))
    for _ in range(20):
        assert session.get(proxy_url(proxied, "/then-close"), timeout=10).status_code == 200
        assert session.post(proxy_url(proxied, "/next"), json={}, timeout=10).status_code == 200


def test_a_client_that_leaves_ends_its_request_to_opencode(proxied, upstream):
    before = upstream.recorder.abandoned
    with _connect(proxied) as sock:
        sock.sendall(
            b"GET /api/opencode-proxy/slow HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n"
            % proxied.token.encode()
        )
        time.sleep(0.3)
        # Gone for good, with a reset: an orderly close may be a client that only stopped
        # sending and still waits for its answer (test_proxy_conformance).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # OpenCode's side of the request ends well before it would have answered (10 s).
    assert upstream.recorder.wait_for(lambda r: r.abandoned > before, timeout=5)


def test_pipelined_requests_are_answered_in_order(proxied, upstream):
    auth = b"Authorization: Bearer %s\r\n" % proxied.token.encode()
    received = _raw_exchange(
        proxied,
        b"GET /api/opencode-proxy/first HTTP/1.1\r\n%s\r\n" % auth
        + b"POST /api/opencode-proxy/second HTTP/1.1\r\n%sContent-Length: 2\r\n\r\n{}" % auth
        + b"HEAD /api/opencode-proxy/third HTTP/1.1\r\n%s\r\n" % auth
        + b"GET /api/opencode-proxy/fourth HTTP/1.1\r\n%sConnection: close\r\n\r\n" % auth,
    )
    assert received.count(b"HTTP/1.1 200 OK") == 4
    first, second, fourth = (received.index(b'"/%s"' % m) for m in (b"first", b"second", b"fourth"))
    assert first < second < fourth
    assert [r.target for r in upstream.requests[-4:]] == ["/first", "/second", "/third", "/fourth"]
