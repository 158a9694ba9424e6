"""Clients without a token, clients that send nothing, clients that stop reading, clients
that speak TLS to it: what the real Manager does about them (``manager.connection_guard``),
over raw sockets."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import ssl
import time

import pytest
import requests

from tests.support import rawhttp
from tests.support.auth import bearer
from tests.support.git import git, make_repo
from tests.support.processes import Cli, RunningManager

GIB = 1024**3
MIB = 1024**2
UP = "/api/internal/repo-mirror/1/up"
AUTHORISED_GET = "/api/internal/opencode-workspaces"


def _address(manager: RunningManager) -> tuple[str, int]:
    return rawhttp.address(manager.url)


def _connect(manager: RunningManager, timeout: float = 10) -> socket.socket:
    return rawhttp.connect(manager.url, timeout)


def test_an_unauthenticated_upload_is_refused_after_its_head_not_its_body(manager):
    with _connect(manager) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: m\r\nContent-Type: application/x-tar\r\n"
            b"Content-Length: %d\r\n\r\n" % (UP.encode(), GIB)
        )
        answer, sent = rawhttp.upload_until_answered(sock, GIB)
    # What the client could send is what socket buffers took: the body was never read.
    assert sent < 64 * MIB, sent
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert json.loads(body)["error"] == "unauthorized"
    assert b"connection: close" in head.lower()
    # A small body (a sign-in form) is still read, and the application answers.
    small = requests.post(f"{manager.url}{UP}", data=b"x" * 1000, timeout=10)
    assert small.status_code == 401
    assert small.json()["error"] == "unauthorized"


def test_a_chunked_unauthenticated_upload_and_a_head_get_no_body(manager):
    with _connect(manager) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n" % UP.encode()
        )
        answer, sent = rawhttp.upload_until_answered(sock, GIB)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:300]
    assert sent < 64 * MIB, sent
    with _connect(manager) as sock:
        sock.sendall(
            b"HEAD %s HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % (UP.encode(), GIB)
        )
        answer = rawhttp.read_answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and body == b"", answer[:300]


def test_upload_bytes_in_flight_are_capped(manager_factory):
    # The budget is twice --max-upload-bytes: two announced bodies of 0.9 of it fit, a third
    # is refused at once, and it comes back when a connection goes.
    manager = manager_factory("--no-opencode", "--max-upload-bytes", str(MIB))
    # Connection: close, so that reading the fourth answer ends with it, not at a timeout.
    head = (
        b"POST /api/internal/repo-mirror/0/up?create=1 HTTP/1.1\r\nHost: m\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (manager.token.encode(), 900 * 1024)
    )
    first, second = _connect(manager), _connect(manager)
    try:
        first.sendall(head)
        second.sendall(head)
        time.sleep(0.3)
        with _connect(manager) as third:
            third.sendall(head)
            answer = rawhttp.read_answer(third)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "uploads_busy"
    finally:
        first.close()
    time.sleep(1)
    with _connect(manager) as fourth:
        fourth.sendall(head + b"\0" * (900 * 1024))
        answer = rawhttp.read_answer(fourth, timeout=20)
    second.close()
    assert answer.startswith(b"HTTP/1.1 "), answer[:300]
    assert not answer.startswith(b"HTTP/1.1 503"), answer[:300]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_limit_is_answered_in_json(manager_factory, chunked):
    """Announced or found out while it arrives, too large is the Manager's JSON error (waitress'
    own answer is plain text), and the Manager goes on serving."""
    manager = manager_factory("--no-opencode", "--max-upload-bytes", "100")
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1000"
    body = b"3e8\r\n" + b"x" * 1000 + b"\r\n0\r\n\r\n" if chunked else b"x" * 1000
    with _connect(manager) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer %s\r\n%s\r\n\r\n%s"
            % (UP.encode(), manager.token.encode(), framing, body)
        )
        answer = rawhttp.read_answer(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"Content-Type: application/json" in head, head
    refused = json.loads(payload)
    assert refused["error"] == "upload_too_large" and "--max-upload-bytes" in refused["message"]
    assert requests.get(f"{manager.url}/api/health", timeout=10).status_code == 200


def client_hello() -> bytes:
    """The first flight of a real TLS client: what ``https://`` sends to the Manager's port."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_tls_handshake_is_answered_at_once_in_plain_http(manager):
    # Waiting for a request head, the Manager would leave the client's handshake unanswered
    # for --head-timeout; the client, seeing nothing, could only say "no connection".
    hello = client_hello()
    assert hello[:2] == b"\x16\x03", hello[:8]
    for first, rest in ((hello, b""), (hello[:1], hello[1:])):  # whole, and split in two reads
        with _connect(manager, timeout=3) as sock:
            sock.sendall(first)
            if rest:
                time.sleep(0.2)
                sock.sendall(rest)
            answer = b""
            # A TimeoutError here is the Manager still waiting for a head. A reset is the
            # rest of a split handshake reaching a connection that was answered and closed.
            with contextlib.suppress(ConnectionResetError):
                while block := sock.recv(65536):
                    answer += block
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 400 "), answer[:300]
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"] == "plain_http"
        assert "http://" in json.loads(body)["message"]
    # The Manager goes on serving its plain-HTTP clients.
    health = requests.get(f"{manager.url}/api/health", timeout=5)
    assert health.status_code == 200
    authorised = requests.get(
        f"{manager.url}{AUTHORISED_GET}", headers=bearer(manager.token), timeout=5
    )
    assert authorised.status_code == 200, authorised.text


@pytest.fixture
def many_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2500, "cannot open enough sockets"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
def test_a_thousand_silent_connections_lock_nobody_out(manager, many_descriptors):
    silent: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(_address(manager))
            silent.append(sock)
        time.sleep(0.5)
        # More silent connections than the Manager's connection limit (1,056) are open.
        health = requests.get(f"{manager.url}/api/health", timeout=5)
        assert health.status_code == 200
        authorised = requests.get(
            f"{manager.url}{AUTHORISED_GET}", headers=bearer(manager.token), timeout=5
        )
        assert authorised.status_code == 200, authorised.text
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.slow
def test_a_connection_that_sends_no_head_is_closed_but_one_with_the_token_stays(manager_factory):
    manager = manager_factory("--no-opencode", "--head-timeout", "1")
    request = b"GET %s HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer %s\r\n\r\n" % (
        AUTHORISED_GET.encode(),
        manager.token.encode(),
    )
    with _connect(manager) as silent, _connect(manager) as trickle, _connect(manager) as trusted:
        trusted.sendall(request)
        assert rawhttp.read_one_answer(trusted).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        # A head trickled a byte at a time never completes: closed all the same.
        trickle.setblocking(False)
        closed = False
        for byte in (b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 40)[:40]:
            try:
                trickle.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        assert closed or rawhttp.read_answer(trickle, timeout=5) == b""
        assert rawhttp.closed_by_peer(silent, timeout=5)
        assert time.monotonic() - started < 15
        # The connection that showed the token is still there for its next request.
        trusted.sendall(request)
        assert rawhttp.read_one_answer(trusted).startswith(b"HTTP/1.1 200")


@pytest.mark.slow
def test_a_pull_its_client_stopped_reading_is_cut_and_its_lock_released(manager_factory, tmp_path):
    manager = manager_factory("--no-opencode", "--stall-timeout", "2")
    laptop = make_repo(tmp_path / "laptop" / "big", origin="https://example.invalid/org/big.git")
    # Far more than socket buffers and waitress' 16 MB output buffer take: the pull has to
    # wait for its reader.
    (laptop / "blob.bin").write_bytes(os.urandom(40 * MIB))
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "blob")
    ocm = Cli(manager)
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    repos = ocm.repos(laptop)
    repo_id = int(next(r for r in repos if r["name"] == "big").get("repoId") or repos[0]["id"])

    sleeper = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect(_address(manager))
    try:
        sleeper.sendall(
            b"GET /api/internal/repo-mirror/%d/down?v=2 HTTP/1.1\r\nHost: m\r\n"
            b"Authorization: Bearer %s\r\n\r\n" % (repo_id, manager.token.encode())
        )
        assert sleeper.recv(1024).startswith(b"HTTP/1.1 200")
        # The laptop sleeps: it reads nothing more. A push from elsewhere gets through once
        # the stalled pull has been cut.
        (laptop / "README.md").write_text("changed while the pull slept\n")
        git(laptop, "commit", "-q", "-am", "change")
        deadline = time.monotonic() + 30
        while True:
            done = ocm(laptop, "push", "--yes")
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert done.returncode == 0, done.stderr
        assert "read nothing" in manager.log()
    finally:
        sleeper.close()
