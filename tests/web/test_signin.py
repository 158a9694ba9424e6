"""Signing in to the console: the token buys a cookie; rotation, CSRF and guessing."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from manager.web.return_to import signin_path
from tests.support.auth import bearer
from tests.support.http_server import StandInServer
from tests.support.processes import RunningManager
from tests.web.conftest import cookie_name, session_cookie

PAGES = ["/", "/repos", "/settings", "/health", "/repos/1/remove"]


def test_wrong_token_is_refused_right_one_opens_the_console_and_sign_out_ends_it(
    manager: RunningManager, new_page: Callable[..., Any], sign_in: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(manager.url)
    assert page.url == manager.url + "/signin"
    page.fill("#token", "ocm_not-the-token")
    page.click("button[type=submit]")
    assert "not this Manager's token" in page.text_content("[role=alert]")
    assert session_cookie(page) is None

    cookie = sign_in(page, manager)
    assert page.text_content("h1") == "Repos"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here: a Secure cookie would never come back
    assert cookie["expires"] > time.time() + 3600
    # The token is in no URL, no page and no log after signing in.
    assert manager.token not in page.url and manager.token not in page.content()
    assert manager.token not in manager.log()
    assert manager.token not in (manager.data_dir / "logs" / "manager.log").read_text()

    page.click("text=Sign out")
    page.wait_for_url(manager.url + "/signin")
    assert session_cookie(page) is None
    # The session is over on the Manager too: the old cookie is no key any more.
    old = requests.get(
        manager.url + "/repos?format=json",
        cookies={cookie_name(manager): cookie["value"]},
        timeout=10,
    )
    assert old.status_code == 401


def test_a_refused_sign_in_answers_json_in_the_apis_shape(manager: RunningManager) -> None:
    answer = requests.post(
        manager.url + "/signin",
        data={"token": "ocm_not-the-token"},
        headers={"Origin": manager.url, "Accept": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "signedIn": False,
        "error": "wrong_token",
        "message": "That is not this Manager's token. Ask its operator for the current one.",
    }


def test_signing_in_again_ends_the_browsers_earlier_sign_in(manager: RunningManager) -> None:
    url, origin = manager.url + "/signin", {"Origin": manager.url}

    def sign_in(jar: dict[str, str]) -> str:
        answer = requests.post(
            url,
            data={"token": manager.token},
            headers=origin,
            cookies=jar,
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 303, answer.text
        return str(answer.cookies[cookie_name(manager)])

    def repos(cookie: str) -> int:
        jar = {cookie_name(manager): cookie}
        return requests.get(manager.url + "/repos?format=json", cookies=jar, timeout=10).status_code

    first = sign_in({})
    again = sign_in({cookie_name(manager): first})
    assert again != first
    assert (repos(again), repos(first)) == (200, 401)
    other = sign_in({})  # another browser's sign-in is its own
    assert (repos(other), repos(again)) == (200, 200)


@pytest.mark.parametrize("path", PAGES)
def test_no_page_loads_signed_out(manager: RunningManager, path: str) -> None:
    page = requests.get(manager.url + path, timeout=10)
    back_to = "/signin" if path == "/" else signin_path(path)  # the page asked for, after
    assert page.status_code == 200 and page.url == manager.url + back_to
    assert 'name="token"' in page.text and "Repos" not in page.text
    twin = requests.get(manager.url + path, params={"format": "json"}, timeout=10)
    if path != "/":
        assert twin.status_code == 401 and twin.json()["error"] == "not_signed_in"
    # The token in a header opens the API, not the console: the console wants its cookie,
    # and says so rather than asking for a valid token.
    with_token = requests.get(
        manager.url + path, headers=bearer(manager.token), allow_redirects=False, timeout=10
    )
    assert with_token.status_code in (303, 401)
    if path != "/":
        with_token = requests.get(
            manager.url + path,
            params={"format": "json"},
            headers=bearer(manager.token),
            timeout=10,
        )
        assert with_token.status_code == 401
        assert "browser sign-in" in with_token.json()["message"]


def test_signed_out_browser_lands_on_the_sign_in_page(
    manager: RunningManager, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    for path in PAGES:
        page.goto(manager.url + path)
        back_to = "/signin" if path == "/" else signin_path(path)
        assert page.url == manager.url + back_to, path
        assert page.is_visible("#token")


def test_two_managers_on_one_host_name_keep_their_own_sign_ins(
    manager_factory: Callable[..., RunningManager],
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
) -> None:
    """Cookies are kept per host name, not per port: one browser signed in to two Managers
    on 127.0.0.1 holds a cookie for each, and neither sign-in ends the other."""
    first, second = manager_factory("--no-opencode"), manager_factory("--no-opencode")
    page = new_page()
    sign_in(page, first)
    sign_in(page, second)

    names = {c["name"] for c in page.context.cookies()}
    assert names == {cookie_name(first), cookie_name(second)}
    for manager in (first, second, first):
        page.goto(manager.url + "/repos")
        assert page.url == manager.url + "/repos"
        assert page.text_content("h1") == "Repos"
    # Signing out of one leaves the other signed in.
    page.click("text=Sign out")
    page.goto(second.url + "/repos")
    assert page.text_content("h1") == "Repos"


def test_the_api_stays_token_only(console: tuple[RunningManager, Any]) -> None:
    manager, page = console
    cookie = session_cookie(page)
    assert cookie is not None
    jar = {cookie_name(manager): cookie["value"]}
    url = manager.url + "/api/internal/opencode-workspaces"
    assert requests.get(url, cookies=jar, timeout=10).status_code == 401
    assert requests.get(url, headers=bearer(manager.token), timeout=10).json() == {"workspaces": []}


def test_a_cookie_from_before_token_rotate_no_longer_works(
    console: tuple[RunningManager, Any],
) -> None:
    manager, page = console
    cookie = session_cookie(page)
    assert cookie is not None
    jar = {cookie_name(manager): cookie["value"]}
    assert requests.get(manager.url + "/health?format=json", cookies=jar, timeout=10).ok

    manager.cli("token", "rotate")

    assert (
        requests.get(manager.url + "/health?format=json", cookies=jar, timeout=10).status_code
        == 401
    )
    page.goto(manager.url + "/health")
    assert page.url == manager.url + signin_path("/health")


def test_a_rotation_elsewhere_sends_the_live_list_to_sign_in_unless_a_form_holds_input(
    manager: RunningManager, new_page: Callable[..., Any], sign_in: Callable[..., Any]
) -> None:
    idle, typing = new_page(), new_page()
    sign_in(idle, manager)
    sign_in(typing, manager)
    typing.fill("input[name=source]", "git@example.invalid:team/app.git")
    typing.fill("input[name=branch]", "release")

    manager.cli("token", "rotate")

    # Nothing typed: the live list goes to the sign-in page, as any page load would.
    idle.wait_for_url(manager.url + "/signin")
    # Something typed: leaving would lose it; the page says so and keeps it.
    banner = typing.locator("#signed-out[role=alert]")
    expect(banner).to_contain_text("What you typed below is still here and was not sent")
    assert typing.url == manager.url + "/repos"
    assert typing.input_value("input[name=source]") == "git@example.invalid:team/app.git"
    assert typing.input_value("input[name=branch]") == "release"
    banner.get_by_role("link", name="sign in again").click()
    typing.wait_for_url(manager.url + "/signin")


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """A page on another origin (same host, other port: same-site, so the Strict cookie IS
    sent and only the Origin check stands in the way). ``other_site(html)`` serves it."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = pages.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = StandInServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(html: str) -> str:
        pages["/evil.html"] = html
        return f"http://127.0.0.1:{server.server_address[1]}/evil.html"

    yield serve
    server.shutdown()
    server.server_close()


def test_a_cross_site_post_is_refused(
    console: tuple[RunningManager, Any],
    other_site: Callable[[str], str],
    git_repo: Callable[..., Any],
) -> None:
    manager, page = console
    source = git_repo("victim")
    evil = other_site(
        f"""<form id="f" method="post" action="{manager.url}/repos">
        <input name="source" value="{source}"></form>
        <script>document.getElementById("f").submit()</script>"""
    )
    with page.expect_response(manager.url + "/repos") as answer:
        page.goto(evil)
    assert answer.value.status == 403
    assert "did not come from the Manager&#39;s own pages" in answer.value.text()

    rotate = other_site(
        f"""<form id="f" method="post" action="{manager.url}/settings/token">
        <input name="confirm" value="yes"></form>
        <script>document.getElementById("f").submit()</script>"""
    )
    with page.expect_response(manager.url + "/settings/token") as answer:
        page.goto(rotate)
    assert answer.value.status == 403

    # Nothing happened: no repo, and the token still works.
    page.goto(manager.url + "/repos?format=json")
    assert '"repos":[]' in page.text_content("body").replace(" ", "")
    api = requests.get(
        manager.url + "/api/internal/opencode-workspaces", headers=bearer(manager.token), timeout=10
    )
    assert api.status_code == 200
    # A script (no browser, so no Origin at all) holding the cookie is refused too.
    cookie = session_cookie(page)
    assert cookie is not None
    bare = requests.post(
        manager.url + "/repos",
        data={"source": str(source)},
        cookies={cookie_name(manager): cookie["value"]},
        timeout=10,
    )
    assert bare.status_code == 403


def test_wrong_tokens_are_slowed_down(manager: RunningManager) -> None:
    url = manager.url + "/signin"
    origin = {"Origin": manager.url}
    answers = [
        requests.post(url, data={"token": f"guess-{n}"}, headers=origin, timeout=10)
        for n in range(12)
    ]
    codes = [a.status_code for a in answers]
    assert codes[0] == 401
    assert 429 in codes, codes
    limited = answers[codes.index(429)]
    assert int(limited.headers["Retry-After"]) >= 1
    assert "Too many attempts" in limited.text
    # Even the right token waits its turn...
    right = requests.post(
        url, data={"token": manager.token}, headers=origin, allow_redirects=False, timeout=10
    )
    assert right.status_code == 429
    # ...and gets in once the address has waited.
    time.sleep(int(right.headers["Retry-After"]) + 0.5)
    right = requests.post(
        url, data={"token": manager.token}, headers=origin, allow_redirects=False, timeout=10
    )
    assert right.status_code == 303 and cookie_name(manager) in right.cookies
    assert "refused: too many attempts" in manager.log()


def test_a_site_whose_name_points_here_cannot_spend_the_sign_in_limit(
    manager: RunningManager,
) -> None:
    # DNS rebinding: a site's name made to resolve to 127.0.0.1 gives its page this Manager
    # as a same-origin server. Its guesses would spend this machine's sign-in attempts.
    port = manager.url.rsplit(":", 1)[1]

    def sign_in_as(host: str, token: str) -> requests.Response:
        return requests.post(
            manager.url + "/signin",
            params={"format": "json"},
            data={"token": token},
            headers={"Host": host, "Origin": f"http://{host}"},
            allow_redirects=False,
            timeout=10,
        )

    for n in range(8):
        guess = sign_in_as(f"rebound.example:{port}", f"guess-{n}")
        assert guess.status_code == 403 and guess.json()["error"] == "foreign_host"
        assert "localhost" in guess.json()["message"]
    # Nothing was spent, and this machine's own names still sign in.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert sign_in_as(host, manager.token).json() == {"signedIn": True}, host


def _through_tls_proxy(
    manager: RunningManager, host: str, origin: str, **params: str
) -> requests.Response:
    """A sign-in with the token as a TLS proxy in front passes it on: the browser's Host and
    Origin, and ``X-Forwarded-Proto: https``."""
    return requests.post(
        manager.url + "/signin",
        params=params,
        data={"token": manager.token},
        headers={"Host": host, "Origin": origin, "X-Forwarded-Proto": "https"},
        allow_redirects=False,
        timeout=10,
    )


def test_behind_the_trusted_proxy_the_public_name_signs_in(
    manager_factory: Callable[..., RunningManager],
) -> None:
    # The documented set-up: a TLS proxy on the same machine passes the public Host on, and
    # the Manager, listening on 127.0.0.1, cannot know that name: any goes.
    manager = manager_factory("--no-opencode", "--trusted-proxy", "127.0.0.1")
    answer = _through_tls_proxy(manager, "ocm.example.com", "https://ocm.example.com")
    assert answer.status_code == 303, answer.text
    assert "; Secure" in answer.headers["Set-Cookie"]


def test_cookie_is_secure_behind_the_trusted_proxy_only(
    manager_factory: Callable[..., RunningManager],
) -> None:
    def sign_in_over(manager: RunningManager, proto: str) -> str:
        answer = requests.post(
            manager.url + "/signin",
            data={"token": manager.token},
            headers={
                "X-Forwarded-Proto": proto,
                "Origin": manager.url.replace("http://", f"{proto}://"),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 303, answer.text
        return answer.headers["Set-Cookie"]

    behind_proxy = manager_factory("--no-opencode", "--trusted-proxy", "127.0.0.1")
    assert "; Secure" in sign_in_over(behind_proxy, "https")
    assert "; Secure" not in sign_in_over(behind_proxy, "http")
    # Without --trusted-proxy anyone could claim https: the header is ignored (and the
    # https Origin, which no longer matches, refused).
    direct = manager_factory("--no-opencode")
    refused = requests.post(
        direct.url + "/signin",
        data={"token": direct.token},
        headers={"X-Forwarded-Proto": "https", "Origin": direct.url.replace("http:", "https:")},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 403
    assert "; Secure" not in sign_in_over(direct, "http")


def test_a_tls_proxy_the_manager_does_not_believe_is_named_not_retried(
    manager_factory: Callable[..., RunningManager],
) -> None:
    # A TLS proxy in front, as on a VM, but the Manager started without --trusted-proxy: the
    # browser is on https://<name>, the Manager sees http://<name>. "Reload and retry" would
    # loop for good; the page says what the Manager needs, and the log names the proxy.
    manager = manager_factory("--no-opencode")
    refused = _through_tls_proxy(manager, "127.0.0.1", "https://127.0.0.1", format="json")
    assert refused.status_code == 403
    assert refused.json()["error"] == "untrusted_proxy"
    assert "--trusted-proxy" in refused.json()["message"]
    assert "--trusted-proxy 127.0.0.1" in manager.log()
    # A page of another site is still just a cross-site request.
    elsewhere = _through_tls_proxy(manager, "127.0.0.1", "https://elsewhere.example", format="json")
    assert elsewhere.status_code == 403 and elsewhere.json()["error"] == "cross_origin"


def test_a_proxy_that_drops_the_port_from_host_is_named_not_retried(
    manager_factory: Callable[..., RunningManager],
) -> None:
    # nginx's `proxy_set_header Host $host` passes the host without the port the browser
    # used: a page on https://<name>:8443 then looks foreign to the Manager behind it.
    manager = manager_factory("--no-opencode", "--trusted-proxy", "127.0.0.1")
    refused = _through_tls_proxy(
        manager, "ocm.example.com", "https://ocm.example.com:8443", format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "host_without_port"
    assert "$http_host" in refused.json()["message"]
    assert "proxy_set_header Host $http_host" in manager.log()
