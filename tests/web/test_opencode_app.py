"""OpenCode's own web app behind the console's sign-in, with real sessions.

A real Manager runs the real OpenCode, whose LLM is the scripted stand-in on 127.0.0.1
(``tests.support.llm``): the agent really runs on the Manager and writes real files. A
session is started the way ``ocm`` does (through the proxy, with the token); headless
Chromium, signed in on the console, sees it live and continues it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from manager.web.opencode_app import app_url_for, encode_directory
from manager.web.return_to import signin_path
from tests.support import proctree
from tests.support.auth import basic, bearer
from tests.support.env import isolated_environ
from tests.support.git import make_repo
from tests.support.llm import ScriptedLLM, Turn
from tests.support.processes import RunningManager, start_manager
from tests.support.upstream import GZIP_BODY, RecordingUpstream
from tests.web.conftest import cookie_name

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "opencode-app.png"
# As tests/web/test_screenshots.py: every run takes the README's picture in a temporary
# directory; OCM_UPDATE_SCREENSHOTS=1 (read at import, before isolated_env clears OCM_*)
# replaces the one in docs/.
UPDATE_SCREENSHOT = os.environ.get("OCM_UPDATE_SCREENSHOTS") == "1"
PROMPT_BOX = '[contenteditable="true"]'


@dataclass
class Live:
    manager: RunningManager
    app_url: str
    directory: Path
    llm: ScriptedLLM


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, opencode_bin: str) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("opencode-app")
    env = isolated_environ(root / "home")
    env.update(
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    llm = ScriptedLLM([]).start()
    env.update(llm.opencode_environment())
    manager = start_manager(
        root / "data", root / "manager.log", "--opencode-bin", opencode_bin, env=env
    )
    try:
        source = make_repo(root / "project")
        manager.cli("repo", "add", str(source), "--name", "project")
        listed = json.loads(manager.cli("repo", "list", "--json").stdout)
        directory = Path(listed[0]["directory"])
        app_url = manager.web_app_url()
        manager.wait_for_opencode()
        yield Live(manager, app_url, directory, llm)
    finally:
        manager.stop()
        llm.stop()


def _proxy(live: Live, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A call the way ``ocm``'s TUI makes it: through the proxy, with the token."""
    response = requests.request(
        method,
        f"{live.manager.url}/api/opencode-proxy{path}",
        params={"directory": str(live.directory)},
        headers=bearer(live.manager.token),
        timeout=120,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    return response


def _cookie_header(cookie: dict[str, Any]) -> dict[str, str]:
    return {"Cookie": f"{cookie['name']}={cookie['value']}"}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_session_from_ocm_is_seen_live_and_continued_in_the_browser(
    live: Live,
    new_page: Callable[..., Any],
    sign_in: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    first = live.directory / "notes.txt"
    second = live.directory / "second.txt"
    live.llm.add(Turn("make the notes", str(first), "from the agent\n", "I wrote notes.txt."))
    live.llm.add(Turn("add a second file", str(second), "turn two\n", "Second file is there."))
    session = _proxy(live, "POST", "/session", json={}).json()

    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, live.manager)
    page.goto(f"{live.app_url}/{encode_directory(str(live.directory))}/session/{session['id']}")
    page.wait_for_selector(PROMPT_BOX, timeout=60_000)
    # Set on this very document: still there after the session ran means no reload happened.
    page.evaluate("window.__sameDocument = true")

    _proxy(
        live,
        "POST",
        f"/session/{session['id']}/message",
        json={"parts": [{"type": "text", "text": "please make the notes"}]},
    )
    assert first.read_text() == "from the agent\n"
    page.get_by_text("please make the notes").first.wait_for(timeout=30_000)
    page.get_by_text("I wrote notes.txt.").first.wait_for(timeout=30_000)
    assert page.get_by_text("notes.txt").count() > 0
    assert page.evaluate("window.__sameDocument") is True

    page.click(PROMPT_BOX)
    page.keyboard.type("now add a second file")
    page.keyboard.press("Enter")
    page.get_by_text("Second file is there.").first.wait_for(timeout=60_000)
    assert proctree.wait_until(lambda: second.exists(), timeout=30)
    assert second.read_text() == "turn two\n"
    # Both turns are the same session, as ocm's TUI would show it.
    messages = _proxy(live, "GET", f"/session/{session['id']}/message").json()
    texts = [p.get("text", "") for m in messages for p in m["parts"] if p["type"] == "text"]
    assert "please make the notes" in texts and "now add a second file" in texts

    # The picture for the README: once the turn has finished drawing.
    expect(page.get_by_text("Thinking", exact=True)).to_have_count(0, timeout=30_000)
    picture = tmp_path / SCREENSHOT.name
    page.screenshot(path=str(picture))
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if UPDATE_SCREENSHOT:
        shutil.copyfile(picture, SCREENSHOT)

    # The terminal cannot work through the Manager: the page says so instead of staying blank.
    page.click(PROMPT_BOX)
    page.keyboard.press("Control+Backquote")  # the terminal panel
    page.keyboard.press("Control+Alt+t")  # a new terminal in it
    notice = page.locator("#ocm-terminal-notice")
    expect(notice).to_contain_text("terminal needs a WebSocket", timeout=30_000)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_app_does_not_load_without_signing_in(live: Live, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(live.app_url + "/")
    # Sent to the console's sign-in form; the app's page never arrived.
    assert page.url == live.manager.url + signin_path(live.app_url + "/")
    assert page.locator("#token").count() == 1
    encoded = encode_directory(str(live.directory))
    paths = ("/", f"/{encoded}/session", "/session", "/global/event", "/api/health")
    for path in (*paths, "/__ocm/terminal-notice.js"):
        answer = requests.get(live.app_url + path, timeout=10)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "not_signed_in"
    forged = requests.get(
        live.app_url + "/session",
        headers={"Cookie": f"{cookie_name(live.manager)}=forged"},
        timeout=10,
    )
    assert forged.status_code == 401
    # The Manager token as credentials does not open the app either: it signs in on the console.
    with_token = requests.get(live.app_url + "/session", headers=bearer(live.manager.token))
    assert with_token.status_code == 401


@pytest.mark.e2e
@pytest.mark.slow
def test_signed_in_requests_follow_the_proxy_rules(
    live: Live, new_page: Callable[..., Any], sign_in: Callable[..., dict[str, Any]]
) -> None:
    cookie = _cookie_header(sign_in(new_page(), live.manager))
    origin = {"Origin": live.app_url}
    query = {"directory": str(live.directory)}

    # The app's page is OpenCode's, with its CSP, plus the one script of ours.
    app_page = requests.get(live.app_url + "/", headers=cookie | {"Accept": "text/html"})
    assert app_page.status_code == 200 and "/assets/index-" in app_page.text
    assert '<script src="/__ocm/terminal-notice.js"></script></head>' in app_page.text
    assert "script-src 'self'" in app_page.headers["content-security-policy"]
    script = requests.get(live.app_url + "/__ocm/terminal-notice.js", headers=cookie)
    assert script.status_code == 200 and "window.fetch" in script.text

    listed = requests.get(live.app_url + "/session", params=query, headers=cookie, timeout=10)
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    # No cookie of OpenCode's, and no challenge for its password, comes back.
    assert "set-cookie" not in listed.headers and "www-authenticate" not in listed.headers

    made = requests.post(
        live.app_url + "/session", params=query, json={}, headers=cookie | origin, timeout=10
    )
    assert made.status_code == 200 and made.json()["directory"] == str(live.directory)
    elsewhere = requests.post(
        live.app_url + "/session",
        params=query,
        json={},
        headers=cookie | {"Origin": "http://attacker.invalid"},
        timeout=10,
    )
    assert elsewhere.status_code == 403 and elsewhere.json()["error"] == "cross_origin"
    # A proxy in front that passes Host without the port the browser used (nginx's $host):
    # the app's own page looks foreign, and the refusal says why rather than "reload".
    portless = requests.post(
        live.app_url + "/session",
        params=query,
        json={},
        headers=cookie | origin | {"Host": "127.0.0.1"},
        timeout=10,
    )
    assert portless.status_code == 403 and portless.json()["error"] == "host_without_port"
    no_origin = requests.post(
        live.app_url + "/session", params=query, json={}, headers=cookie, timeout=10
    )
    assert no_origin.status_code == 403

    terminal = requests.get(
        live.app_url + "/pty/x/connect",
        headers=cookie | {"Connection": "Upgrade", "Upgrade": "websocket"},
        timeout=10,
    )
    assert terminal.status_code == 501
    assert "terminal" in terminal.json()["message"]
    # Nor is a shell started on the Manager for a terminal that could never connect.
    for spelling in ("/pty", "/PTY/", "//p%74y"):
        shell = requests.post(
            live.app_url + spelling, params=query, json={}, headers=cookie | origin, timeout=10
        )
        assert shell.status_code == 501, spelling
    shells = requests.get(live.app_url + "/pty", params=query, headers=cookie, timeout=10)
    assert shells.status_code == 200 and shells.json() == []


@pytest.mark.e2e
@pytest.mark.slow
def test_a_page_from_a_repo_opened_on_the_app_origin_runs_nothing(
    live: Live, new_page: Callable[..., Any], sign_in: Callable[..., dict[str, Any]]
) -> None:
    # OpenCode answers any file at /api/fs/read/<path>, typed by its name. A repo's own page
    # opened there (a link in an agent's answer, a page on another port of the host) would
    # otherwise run as the app, with the sign-in, and could drive OpenCode's shell.
    hostile = live.directory / "report.html"
    hostile.write_text(
        "<title>inert</title><script>document.title = 'ran';"
        " fetch('/session', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        " body: '{}'})</script>"
    )
    try:
        page = new_page()
        sign_in(page, live.manager)
        sessions = len(_proxy(live, "GET", "/session").json())
        opened = page.goto(f"{live.app_url}/api/fs/read/{hostile}")
        assert opened is not None and opened.status == 200
        assert opened.headers["content-type"].startswith("text/html")
        assert opened.headers["content-security-policy"] == "sandbox"
        assert page.title() == "inert"
        assert len(_proxy(live, "GET", "/session").json()) == sessions
        # Not framed by a page of another origin, nor read as another type, the app's page
        # included (which keeps OpenCode's own policy, not the sandbox).
        app_page = page.goto(live.app_url + "/")
        assert app_page is not None
        for answer in (opened, app_page):
            assert answer.headers["x-frame-options"] == "SAMEORIGIN"
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in app_page.headers["content-security-policy"]
    finally:
        hostile.unlink()


@pytest.mark.e2e
@pytest.mark.slow
def test_an_event_stream_is_live_counted_and_ends_with_the_sign_in(
    live: Live, new_page: Callable[..., Any], sign_in: Callable[..., dict[str, Any]]
) -> None:
    cookie = _cookie_header(sign_in(new_page(), live.manager))
    directory = str(live.directory)
    stream = _raw_stream(live.app_url, f"/event?directory={directory}", cookie)
    try:
        assert b"server.connected" in _read_until(stream, b"server.connected")
        head = _repo_head(live)
        assert head["inUse"] is True
        requests.post(
            live.app_url + "/session",
            params={"directory": directory},
            json={},
            headers=cookie | {"Origin": live.app_url},
            timeout=10,
        )
        assert b"session.created" in _read_until(stream, b"session.created")
        # Rotating the token ends the sign-in, and with it the open stream.
        live.manager.token = live.manager.cli("token", "rotate").stdout.strip()
        assert _read_until(stream, b"\x00never", timeout=30).endswith(b"<closed>")
        assert proctree.wait_until(lambda: _repo_head(live)["inUse"] is False, timeout=10)
        again = requests.get(live.app_url + "/session", headers=cookie, timeout=10)
        assert again.status_code == 401
    finally:
        stream.close()


def _repo_head(live: Live) -> dict[str, Any]:
    repos = requests.get(
        f"{live.manager.url}/api/internal/opencode-workspaces",
        headers=bearer(live.manager.token),
        timeout=10,
    ).json()["workspaces"]
    repo_id = repos[0]["repoId"]
    return dict(
        requests.get(
            f"{live.manager.url}/api/internal/repo-mirror/{repo_id}/head",
            headers=bearer(live.manager.token),
            timeout=10,
        ).json()
    )


def _raw_stream(base_url: str, target: str, headers: dict[str, str]) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 30.0) -> bytes:
    """What arrived until ``marker``, or until the Manager closed (``<closed>`` appended)."""
    received = b""
    deadline = time.monotonic() + timeout
    while marker not in received and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return received + b"<closed>"
        received += chunk
    return received


def _services(ports: dict[str, int], web_app_url: str | None = None) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        ports=ports, settings=SimpleNamespace(web_app_url=web_app_url), cookie_name="ocm_session_t"
    )


def test_the_console_links_a_repo_to_its_sessions_on_the_host_the_browser_uses() -> None:
    services = _services({"console": 5003, "opencode_app": 5004})
    directory = "/srv/ocm/repos/3-café"
    encoded = encode_directory(directory)
    assert "=" not in encoded and "/" not in encoded and "+" not in encoded
    import base64

    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() == directory
    assert (
        app_url_for(directory, services, "vm.example:5003")
        == f"http://vm.example:5004/{encoded}/session"
    )
    assert app_url_for(directory, services, "[::1]:5003", scheme="https", session_id="ses_1") == (
        f"https://[::1]:5004/{encoded}/session/ses_1"
    )
    behind_tls = _services({"opencode_app": 5004}, "https://code.example:8443/")
    assert app_url_for(directory, behind_tls, "ocm.example") == (
        f"https://code.example:8443/{encoded}/session"
    )
    # No web app (--no-opencode, --web-app-port off): no link.
    assert app_url_for(directory, _services({"console": 5003}), "vm.example:5003") is None


@pytest.mark.slow
def test_a_bad_or_busy_web_app_port_is_one_clear_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = dict(os.environ, OCM_OPENCODE_PASSWORD="x")
    serve = [sys.executable, "-m", "manager", "serve", "--host", "127.0.0.1", "--port", "0"]
    serve += ["--data-dir", str(tmp_path / "data"), "--opencode-url", "http://127.0.0.1:9"]
    bad = subprocess.run(
        [*serve, "--web-app-port", "nope"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode == 2  # a usage error, like every other bad option value
    assert bad.stderr.strip().splitlines()[-1] == (
        "ocm-manager: argument --web-app-port: 'nope' is not a port or `off`; give 0-65535"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = subprocess.run(
            [*serve, "--web-app-port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert taken.returncode == 1
    last = taken.stderr.strip().splitlines()[-1]
    assert last == (
        f"ocm-manager: cannot listen on 127.0.0.1:{port} (--web-app-port): Address already in"
        " use; pick another port or stop what uses it"
    )


@pytest.mark.slow
def test_what_reaches_opencode_from_the_browser_and_what_comes_back(
    tmp_path: Path, new_page: Callable[..., Any], sign_in: Callable[..., dict[str, Any]]
) -> None:
    """Against the recording stand-in for OpenCode, where every header that arrived is seen."""
    password = "opencode-secret-" + "y" * 24
    env = isolated_environ(tmp_path / "home") | {"OCM_OPENCODE_PASSWORD": password}
    with RecordingUpstream() as upstream:
        manager = start_manager(
            tmp_path / "data", tmp_path / "manager.log", "--opencode-url", upstream.url, env=env
        )
        try:
            app_url = manager.web_app_url()
            cookie = _cookie_header(sign_in(new_page(), manager))
            answer = requests.post(
                app_url + "/session/a%2Fb?directory=%2Fsrv%2Frepo&x=1",
                headers=cookie
                | {"Origin": app_url, "Authorization": "Bearer not-for-opencode", "X-Kept": "1"},
                json={"t": 1},
                timeout=10,
            )
            assert answer.status_code == 200
            seen = upstream.last()
            assert seen.method == "POST"
            assert seen.target == "/session/a%2Fb?directory=%2Fsrv%2Frepo&x=1"
            assert seen.header("Authorization") == basic(password)["Authorization"]
            assert seen.header("Cookie") is None  # the console's sign-in is the Manager's
            assert seen.header("X-Kept") == "1"
            assert password not in repr(answer.headers) + answer.text

            # OpenCode's answers pass unchanged, compressed ones byte for byte.
            raw = requests.get(app_url + "/gzip", headers=cookie, stream=True, timeout=10)
            assert raw.headers["Content-Encoding"] == "gzip"
            assert raw.raw.read(decode_content=False) == GZIP_BODY
            # OpenCode refusing the Manager's password is the Manager's fault: 502, no challenge.
            refused = requests.get(app_url + "/challenge", headers=cookie, timeout=10)
            assert refused.status_code == 502 and "www-authenticate" not in refused.headers
            # Nothing at all reaches OpenCode without the sign-in.
            before = len(upstream.requests)
            assert requests.get(app_url + "/session", timeout=10).status_code == 401
            assert len(upstream.requests) == before
        finally:
            manager.stop()


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_a_signed_out_page_load_goes_to_the_console_or_asks_for_a_sign_in() -> None:
    from manager.web.opencode_app import OpencodeWebApp

    page_load = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/L3Nydg/session",
        "REQUEST_URI": "/L3Nydg/session",
        "HTTP_HOST": "vm.example:5004",
        "HTTP_ACCEPT": "text/html,*/*",
        "wsgi.url_scheme": "http",
    }
    app = OpencodeWebApp(_services({"console": 5003, "opencode_app": 5004}), proxy=None)  # type: ignore[arg-type]
    status, headers, _ = _call(app, page_load)
    # The console's sign-in, which comes back here once signed in.
    assert status.startswith("303")
    assert headers["Location"] == (
        "http://vm.example:5003/signin?next=http%3A%2F%2Fvm.example%3A5004%2FL3Nydg%2Fsession"
    )
    # Behind --web-app-url the console's public address is unknown: a page says what to do.
    behind_tls = OpencodeWebApp(_services({}, "https://code.example:8443"), proxy=None)  # type: ignore[arg-type]
    status, headers, body = _call(behind_tls, page_load)
    assert status.startswith("401") and headers["Content-Type"].startswith("text/html")
    assert b"Sign in on the Manager's console" in body
    status, _, body = _call(app, page_load | {"HTTP_ACCEPT": "application/json"})
    assert status.startswith("401") and json.loads(body)["error"] == "not_signed_in"


def test_the_remove_page_counts_the_repos_opencode_sessions(
    live: Live, new_page: Callable[..., Any], sign_in: Callable[..., dict[str, Any]]
) -> None:
    listed = json.loads(live.manager.cli("repo", "list", "--json").stdout)
    repo_id = next(ws["repoId"] for ws in listed if ws["name"] == "project")
    sessions = len(_proxy(live, "GET", "/session").json())
    _proxy(live, "POST", "/session", json={})
    page = new_page()
    sign_in(page, live.manager)
    page.goto(f"{live.manager.url}/repos/{repo_id}/remove")
    shown = page.text_content("main") or ""
    assert f"{sessions + 1} OpenCode session" in shown
    assert "neither ocm nor the console reaches" in " ".join(shown.split())
