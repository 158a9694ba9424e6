"""ocm.transport's own behaviours, against raw sockets on 127.0.0.1 that misbehave on purpose:
kept-alive connections, a connection the server dropped while idle, proxies from the
environment, an early answer during an upload, a download that breaks off, a server that
stops answering, an https URL for a server that does not speak TLS."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import pytest

from ocm import api
from ocm.api import ManagerClient, Workspace
from ocm.errors import AuthError, ManagerError
from tests.client import standin
from tests.client.conftest import run_ocm

TOKEN = "tok-7f3a-only-in-the-authorization-header"
WORKSPACES = "/api/internal/opencode-workspaces"


@dataclass
class Request:
    line: str
    headers: list[tuple[str, str]]

    @property
    def target(self) -> str:
        return self.line.split(" ")[1]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def read_head(reader: BinaryIO) -> Request | None:
    """The request line and headers (a body is left unread); None when the client hung up."""
    try:
        line = reader.readline()
    except OSError:
        return None
    if not line:
        return None
    headers = []
    while (raw := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return Request(line.decode("latin-1").rstrip("\r\n"), headers)


def read_body(reader: BinaryIO, request: Request) -> bytes:
    """The body after ``request``'s head, by Content-Length or in chunks."""
    if request.header("Transfer-Encoding") != "chunked":
        return reader.read(int(request.header("Content-Length") or 0))
    body = b""
    while size := int(reader.readline().split(b";")[0], 16):
        body += reader.read(size)
        reader.readline()
    reader.readline()
    return body


def answer(status: str, body: bytes, *extra: str, content_type: str = "application/json") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    head += [f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def json_answer(payload: Any, status: str = "200 OK", *extra: str) -> bytes:
    return answer(status, json.dumps(payload).encode(), *extra)


# A script serves one accepted connection: (socket, its reader, the server).
Script = Callable[[socket.socket, BinaryIO, "Scripted"], None]


@dataclass
class Scripted:
    """A server that runs ``scripts[n]`` for its n-th accepted connection (the last one for
    any after), counting connections and recording request heads."""

    scripts: list[Script]
    url: str = ""
    accepted: int = 0
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # Set by a script once it has closed its connection.
    closed: threading.Event = field(default_factory=threading.Event)

    def read(self, reader: BinaryIO) -> Request | None:
        request = read_head(reader)
        if request is not None:
            self.requests.append(request)
        return request

    @property
    def targets(self) -> list[str]:
        return [request.target for request in self.requests]


@contextlib.contextmanager
def scripted(*scripts: Script) -> Iterator[Scripted]:
    server = Scripted(list(scripts))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # to notice ``stop``: a blocked accept() ignores close()
    server.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    threads: list[threading.Thread] = []

    def run(conn: socket.socket, script: Script) -> None:
        with conn, conn.makefile("rb") as reader, contextlib.suppress(OSError):
            script(conn, reader, server)

    def accept() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(15)  # no script may hang the test run
            script = server.scripts[min(server.accepted, len(server.scripts) - 1)]
            server.accepted += 1
            thread = threading.Thread(target=run, args=(conn, script), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        server.stop.set()
        acceptor.join(5)
        listener.close()
        for thread in threads:
            thread.join(5)


def keep_alive(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    """Answers every request on the connection, keeping it open (HTTP/1.1's default)."""
    while (request := server.read(reader)) is not None:
        read_body(reader, request)
        payload = {"workspaces": []} if request.target == WORKSPACES else {"ok": request.target}
        conn.sendall(json_answer(payload))


def one_answer_then_close(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    """Answers one request without ``Connection: close``, then closes the idle connection."""
    if server.read(reader) is not None:
        conn.sendall(json_answer({"ok": 1}))
    reader.close()  # the socket's descriptor stays open while its reader is
    conn.close()
    server.closed.set()


def one_answer_then_drop_the_next(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    """Answers one request, then reads the next one and closes without an answer: the
    request that crossed the server's idle close."""
    if server.read(reader) is not None:
        conn.sendall(json_answer({"ok": 1}))
    server.read(reader)


def client_for(server: Scripted) -> ManagerClient:
    return ManagerClient(server.url, TOKEN)


# ------------------------------------------------------------------ kept-alive connections


def test_several_requests_share_one_connection() -> None:
    with scripted(keep_alive) as server, client_for(server) as client:
        assert client.workspaces() == []
        assert client.workspaces() == []
        assert client.get_json("/api/health") == {"ok": "/api/health"}
    assert server.targets == [WORKSPACES, WORKSPACES, "/api/health"]
    assert server.accepted == 1


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    with scripted(one_answer_then_close, keep_alive) as server, client_for(server) as client:
        assert client.get_json("/first") == {"ok": 1}
        assert server.closed.wait(5)
        assert client.get_json("/second") == {"ok": "/second"}
    assert server.targets == ["/first", "/second"]
    assert server.accepted == 2


def test_a_streamed_upload_after_an_idle_close_goes_on_a_fresh_connection() -> None:
    # A stream cannot be sent twice: the closed connection must be noticed before sending.
    with scripted(one_answer_then_close, keep_alive) as server, client_for(server) as client:
        assert client.get_json("/first") == {"ok": 1}
        assert server.closed.wait(5)
        response = client.request("POST", "/upload", data=iter([b"one stream, ", b"once"]))
        assert response.json() == {"ok": "/upload"}
        response.close()
    assert server.targets == ["/first", "/upload"]
    assert server.accepted == 2


def test_a_request_that_crossed_the_servers_close_is_sent_again() -> None:
    with scripted(one_answer_then_drop_the_next, keep_alive) as server, client_for(server) as c:
        assert c.get_json("/first") == {"ok": 1}
        assert c.get_json("/second") == {"ok": "/second"}
    # /second reached the dropped connection, then a fresh one.
    assert server.targets == ["/first", "/second", "/second"]
    assert server.accepted == 2


def test_a_streamed_body_that_crossed_the_servers_close_is_not_sent_twice() -> None:
    with scripted(one_answer_then_drop_the_next, keep_alive) as server, client_for(server) as c:
        assert c.get_json("/first") == {"ok": 1}
        with pytest.raises(ManagerError) as raised:
            c.request("POST", "/upload", data=iter([b"a stream that cannot be replayed"]))
    assert str(raised.value).startswith(f"cannot reach the Manager at {server.url} (connection")
    assert server.targets == ["/first", "/upload"]
    assert server.accepted == 1


# ------------------------------------------------------------------ proxies


@dataclass
class Forwarded:
    request: Request
    status: int


def forwarding_proxy(seen: list[Forwarded]) -> Script:
    """A plain HTTP proxy: takes absolute-form requests, records them, forwards each to its
    target without the proxy's own headers, relays the answer."""

    def serve(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
        while (request := server.read(reader)) is not None:
            method, url, _ = request.line.split(" ")
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                seen.append(Forwarded(request, 400))
                conn.sendall(answer("400 Bad Request", b"not a proxy request", "Connection: close"))
                return
            upstream = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
            headers = {
                k: v
                for k, v in request.headers
                if k.lower() not in ("proxy-authorization", "connection", "host")
            }
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            upstream.request(method, path, headers=headers)
            got = upstream.getresponse()
            body = got.read()
            upstream.close()
            seen.append(Forwarded(request, got.status))
            conn.sendall(
                answer(
                    f"{got.status} {got.reason}",
                    body,
                    content_type=got.headers.get("Content-Type", "application/octet-stream"),
                )
            )

    return serve


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the proxies a test names (``run_ocm`` passes this environment on)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


LISTED = Workspace(7, "through-proxy", "main", "ready", "/srv/repos/through-proxy", None)


def list_via(target: standin.StandIn, **proxy_env: str) -> str:
    result = run_ocm(
        "list", env={"OPENCODE_MANAGER_URL": target.url, "OCM_TOKEN": TOKEN, **proxy_env}
    )
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    return result.stdout


def assert_token_only_in_authorization(request: Request) -> None:
    assert TOKEN not in request.line
    assert [k.lower() for k, v in request.headers if TOKEN in v] == ["authorization"]
    assert request.header("Authorization") == f"Bearer {TOKEN}"


@pytest.mark.usefixtures("no_proxy_env")
def test_http_proxy_from_the_environment_carries_the_requests() -> None:
    seen: list[Forwarded] = []
    with standin.serve() as target, scripted(forwarding_proxy(seen)) as proxy:
        target.json_route(WORKSPACES, {"workspaces": [LISTED.to_json()]})
        listed = list_via(target, http_proxy=proxy.url)
    assert "through-proxy" in listed
    assert [f.request.line for f in seen] == [f"GET {target.url}{WORKSPACES} HTTP/1.1"]
    assert seen[0].status == 200
    assert seen[0].request.header("Proxy-Authorization") is None
    assert_token_only_in_authorization(seen[0].request)
    assert [r["path"] for r in target.requests] == [WORKSPACES]


@pytest.mark.usefixtures("no_proxy_env")
def test_no_proxy_naming_the_host_bypasses_the_proxy() -> None:
    seen: list[Forwarded] = []
    with standin.serve() as target, scripted(forwarding_proxy(seen)) as proxy:
        target.json_route(WORKSPACES, {"workspaces": [LISTED.to_json()]})
        listed = list_via(target, http_proxy=proxy.url, no_proxy="localhost,127.0.0.1")
    assert "through-proxy" in listed
    assert proxy.accepted == 0 and seen == []
    assert [r["path"] for r in target.requests] == [WORKSPACES]


@pytest.mark.usefixtures("no_proxy_env")
def test_proxy_credentials_in_the_url_go_to_the_proxy_only() -> None:
    seen: list[Forwarded] = []
    with standin.serve() as target, scripted(forwarding_proxy(seen)) as proxy:
        target.json_route(WORKSPACES, {"workspaces": [LISTED.to_json()]})
        with_user = proxy.url.replace("http://", "http://alice:s%40cret@")
        listed = list_via(target, http_proxy=with_user)
    assert "through-proxy" in listed
    assert len(seen) == 1
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert seen[0].request.header("Proxy-Authorization") == expected
    assert_token_only_in_authorization(seen[0].request)
    # The proxy dropped its own header: the Manager saw only the token.
    assert "Proxy-Authorization" not in target.requests[0]["headers"]
    assert target.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.usefixtures("no_proxy_env")
def test_a_proxy_that_cannot_be_reached_is_named_with_its_variable() -> None:
    """Not "check the URL and that the Manager is running": the Manager is fine, the proxy
    is not; and the advice given works when followed."""
    with standin.serve() as target:
        target.json_route(WORKSPACES, {"workspaces": [LISTED.to_json()]})
        proxy = f"127.0.0.1:{closed_port()}"
        env = {"OPENCODE_MANAGER_URL": target.url, "OCM_TOKEN": TOKEN, "HTTP_PROXY": proxy}
        result = run_ocm("list", env=env)
        assert result.returncode == 1, result.stderr
        assert result.stderr == (
            f"ocm: cannot reach the Manager at {target.url} through the proxy {proxy} that "
            "HTTP_PROXY names (connection refused); fix HTTP_PROXY, or add 127.0.0.1 to "
            "no_proxy to reach the Manager directly\n"
        )
        assert "through-proxy" in run_ocm("list", env={**env, "no_proxy": "127.0.0.1"}).stdout


@pytest.mark.usefixtures("no_proxy_env")
def test_status_probes_the_manager_through_the_proxy_every_command_uses() -> None:
    """`ocm status` said "reachable: yes" past a proxy that every other command failed at."""
    seen: list[Forwarded] = []
    with standin.serve() as target, scripted(forwarding_proxy(seen)) as proxy:
        target.json_route("/api/health", {"opencode": {"state": "ready"}})
        env = {"OPENCODE_MANAGER_URL": target.url, "http_proxy": proxy.url}
        through = run_ocm("status", env=env)
        broken = f"127.0.0.1:{closed_port()}"
        refused = run_ocm("status", env={**env, "http_proxy": broken})
    where = proxy.url.removeprefix("http://")
    assert (
        f"reachable: yes (through the proxy {where} from http_proxy), OpenCode on the Manager"
        " is ready\n" in through.stdout
    )
    assert [f.request.line for f in seen] == [f"GET {target.url}/api/health HTTP/1.0"]
    assert refused.returncode == 0
    assert (
        f"reachable: NO, not through the proxy {broken} that http_proxy names (connection"
        " refused); fix http_proxy, or add 127.0.0.1 to no_proxy to reach the Manager"
        " directly\n" in refused.stdout
    )


def refuse_the_tunnel(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    server.read(reader)
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.mark.usefixtures("no_proxy_env")
def test_a_proxy_that_refuses_the_tunnel_is_named_with_its_answer() -> None:
    with scripted(refuse_the_tunnel) as proxy:
        url = "https://manager.example:5003"
        env = {"OPENCODE_MANAGER_URL": url, "OCM_TOKEN": TOKEN, "https_proxy": proxy.url}
        result = run_ocm("list", env=env)
    where = proxy.url.removeprefix("http://")
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"ocm: cannot reach the Manager at {url} through the proxy {where} that https_proxy "
        "names (it refused to connect to the Manager: 403 Forbidden); fix https_proxy, or add "
        "manager.example to no_proxy to reach the Manager directly\n"
    )


# ------------------------------------------------------------------ bodies both ways


def refuse_the_token_early(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    """Answers 401 as soon as it has the head, reads none of the body, and closes."""
    if server.read(reader) is not None:
        error = {"error": "unauthorized", "message": "token rejected"}
        conn.sendall(json_answer(error, "401 Unauthorized", "Connection: close"))


def big_body(megabytes: int) -> Iterator[bytes]:
    piece = b"\0" * (1 << 20)
    for _ in range(megabytes):
        yield piece


def test_an_early_answer_during_an_upload_is_the_error_reported() -> None:
    with (
        scripted(refuse_the_token_early) as server,
        client_for(server) as client,
        pytest.raises(AuthError) as raised,
    ):
        client.request("POST", "/x", data=big_body(64))
    assert str(raised.value) == (
        f"token from the saved token rejected by {server.url}; "
        f"run `ocm login {server.url}` with a current token"
    )
    assert server.targets == ["/x"]


def break_off_after(framing: str) -> Script:
    """Announces a body of 1 MB (by length or in chunks), sends 1000 bytes of it, closes."""

    def serve(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
        if server.read(reader) is None:
            return
        part = b"x" * 1000
        if framing == "length":
            head = "Content-Length: 1000000"
            sent = part
        else:
            head = "Transfer-Encoding: chunked"
            sent = b"%x\r\n" % 1_000_000 + part
        conn.sendall(f"HTTP/1.1 200 OK\r\n{head}\r\n\r\n".encode() + sent)

    return serve


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_download_that_breaks_off_is_an_error_when_streamed(framing: str) -> None:
    with scripted(break_off_after(framing)) as server, client_for(server) as client:
        response = client.request("GET", "/down")
        received = b""
        with pytest.raises(ConnectionError, match=r"^connection closed in the middle"):
            for piece in response.iter_content(64 * 1024):
                received += piece
        response.close()
    assert received == b"x" * 1000


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_download_that_breaks_off_is_an_error_when_read_whole(framing: str) -> None:
    with scripted(break_off_after(framing)) as server, client_for(server) as client:
        response = client.request("GET", "/down")
        with pytest.raises(ConnectionError, match=r"^connection closed in the middle"):
            response.read()
        response.close()


# ------------------------------------------------------------------ a server that stops answering


def never_answer(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    server.read(reader)
    server.stop.wait(15)


def test_a_server_that_stops_answering_hits_the_read_timeout() -> None:
    with (
        scripted(never_answer) as server,
        client_for(server) as client,
        pytest.raises(ManagerError) as raised,
    ):
        client.request("GET", "/slow", read_timeout=0.5)
    assert str(raised.value) == (
        f"cannot reach the Manager at {server.url} (it stopped answering); "
        "check the URL and that the Manager is running"
    )
    assert server.targets == ["/slow"]


# ------------------------------------------------------------------ https through a proxy


def tunnelling_proxy(seen: list[Request]) -> Script:
    """An https proxy: answers CONNECT, then relays bytes both ways without reading them."""

    def serve(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
        request = server.read(reader)
        if request is None or not request.line.startswith("CONNECT "):
            return
        seen.append(request)
        host, _, port = request.target.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

            def pump(source: socket.socket, sink: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := source.recv(65536):
                        sink.sendall(data)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
            back.start()
            pump(conn, upstream)
            back.join(10)

    return serve


@contextlib.contextmanager
def tls_manager(tmp_path: Path, seen: list[Request]) -> Iterator[str]:
    """A stand-in https Manager on 127.0.0.1 with a self-signed certificate (the caller
    trusts it through SSL_CERT_FILE), answering every request with an empty repo list."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve_one() -> None:
        with contextlib.suppress(OSError):
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as conn, conn.makefile("rb") as rd:
                while (request := read_head(rd)) is not None:
                    seen.append(request)
                    conn.sendall(json_answer({"workspaces": []}))

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(10)


@pytest.mark.usefixtures("no_proxy_env")
def test_https_through_a_proxy_keeps_the_proxy_login_out_of_the_tunnel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy gets its login with CONNECT only; inside the tunnel the Manager gets the
    token and nothing of the proxy's."""
    to_proxy: list[Request] = []
    to_manager: list[Request] = []
    with tls_manager(tmp_path, to_manager) as url, scripted(tunnelling_proxy(to_proxy)) as proxy:
        monkeypatch.setenv("https_proxy", proxy.url.replace("http://", "http://alice:pw@"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        with ManagerClient(url, TOKEN) as client:
            assert client.workspaces() == []
    host_port = url.removeprefix("https://")
    assert [r.line.rsplit(" ", 1)[0] for r in to_proxy] == [f"CONNECT {host_port}"]
    expected = "Basic " + base64.b64encode(b"alice:pw").decode()
    assert to_proxy[0].header("Proxy-Authorization") == expected
    assert TOKEN not in str(to_proxy[0].headers)
    assert [r.target for r in to_manager] == [WORKSPACES]
    assert to_manager[0].header("Proxy-Authorization") is None
    assert_token_only_in_authorization(to_manager[0])


# ------------------------------------------------------------------ a connection opened early


def test_a_connection_opened_early_carries_the_first_request() -> None:
    """push and pull open their connection while git works: the handshake's round trip is
    then spent, and the requests after it use that one connection."""
    with scripted(keep_alive) as server, client_for(server) as client:
        client.open_early()
        for _ in range(100):
            if server.accepted:
                break
            threading.Event().wait(0.05)
        assert server.accepted == 1 and server.requests == []
        assert client.workspaces() == []
        assert client.get_json("/api/health") == {"ok": "/api/health"}
    assert server.accepted == 1


def test_a_manager_unreachable_when_opened_early_is_the_first_requests_error() -> None:
    """The early connection's failure is reported by the first request, in the words it
    would have used connecting itself; the next request tries afresh."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with ManagerClient(f"http://127.0.0.1:{port}", TOKEN) as client:
        client.open_early()
        for _ in range(2):
            with pytest.raises(ManagerError) as raised:
                client.workspaces()
            assert str(raised.value).startswith(
                f"cannot reach the Manager at http://127.0.0.1:{port} (connection refused"
            ), str(raised.value)


# ------------------------------------------------------------------ https to a server without TLS


def take_and_keep_silent(conn: socket.socket, reader: BinaryIO, server: Scripted) -> None:
    """A plain-HTTP server's wait for a request head: it reads the handshake, answers nothing."""
    conn.recv(65536)
    server.stop.wait(15)


@pytest.mark.usefixtures("no_proxy_env")
def test_a_server_that_takes_the_connection_but_not_tls_is_not_called_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TCP connection was made; only the handshake got no answer. Saying "no connection"
    would send the user looking for a Manager that is running."""
    monkeypatch.setattr(api, "CONNECT_TIMEOUT", 0.5)
    with scripted(take_and_keep_silent) as server:
        port = urlsplit(server.url).port
        url = f"https://127.0.0.1:{port}"
        with ManagerClient(url, TOKEN) as client, pytest.raises(ManagerError) as raised:
            client.workspaces()
    assert str(raised.value) == (
        f"cannot reach the Manager at {url} (it does not answer TLS: it may serve plain HTTP); "
        f"use http://127.0.0.1:{port} instead, or check the URL"
    )
    assert server.accepted == 1


@pytest.mark.usefixtures("no_proxy_env")
def test_a_certificate_the_client_does_not_trust_is_still_a_certificate_problem(
    tmp_path: Path,
) -> None:
    """A real TLS server whose certificate fails the check is no plain-HTTP server: the advice
    stays about the certificate."""
    with (
        tls_manager(tmp_path, []) as url,
        ManagerClient(url, TOKEN) as client,
        pytest.raises(ManagerError) as raised,
    ):
        client.workspaces()
    assert str(raised.value) == (
        f"cannot reach the Manager at {url} (TLS handshake failed); "
        "check the Manager's certificate, or use its http:// URL on a trusted network"
    )


@pytest.mark.usefixtures("no_proxy_env")
def test_status_probes_an_https_manager_through_the_proxys_tunnel(tmp_path: Path) -> None:
    to_proxy: list[Request] = []
    to_manager: list[Request] = []
    with tls_manager(tmp_path, to_manager) as url, scripted(tunnelling_proxy(to_proxy)) as proxy:
        env = {
            "OPENCODE_MANAGER_URL": url,
            "https_proxy": proxy.url.replace("http://", "http://alice:pw@"),
            "SSL_CERT_FILE": str(tmp_path / "cert.pem"),
        }
        status = run_ocm("status", env=env)
    where = proxy.url.removeprefix("http://")
    assert f"reachable: yes (through the proxy {where} from https_proxy)" in status.stdout
    assert [r.line for r in to_proxy] == [f"CONNECT {url.removeprefix('https://')} HTTP/1.0"]
    assert (
        to_proxy[0].header("Proxy-Authorization")
        == "Basic " + base64.b64encode(b"alice:pw").decode()
    )
    assert [r.target for r in to_manager] == ["/api/health"]
    assert to_manager[0].header("Proxy-Authorization") is None


@pytest.mark.usefixtures("no_proxy_env")
def test_status_names_a_proxy_that_refuses_the_tunnel() -> None:
    with scripted(refuse_the_tunnel) as proxy:
        env = {"OPENCODE_MANAGER_URL": "https://manager.example:5003", "HTTPS_PROXY": proxy.url}
        status = run_ocm("status", env=env)
    where = proxy.url.removeprefix("http://")
    assert status.returncode == 0
    assert (
        f"reachable: NO, not through the proxy {where} that HTTPS_PROXY names (it refused to"
        " connect to the Manager: 403 Forbidden); fix HTTPS_PROXY, or add manager.example to"
        " no_proxy to reach the Manager directly\n" in status.stdout
    )
