"""What the Manager answers itself on OpenCode's web app listener, before anything reaches
OpenCode: a sign-in page, refusals, the terminal notice. Each carries the headers the README
promises of every answer there, or a page of another origin could frame it.

The real OpenCode is held back by a wrapper that never lets it start: none of these answers
needs it, and the listener is up all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from manager.web.opencode_app.relay import EVERY_ANSWER, NOTICE_PATH
from tests.support.env import isolated_environ
from tests.support.processes import held_opencode, start_manager


@pytest.mark.e2e
def test_the_managers_own_answers_on_the_app_listener_forbid_framing_and_sniffing(
    tmp_path: Path, opencode_bin: str
) -> None:
    held = held_opencode(tmp_path / "opencode-held", opencode_bin, go=tmp_path / "never")
    # Behind --web-app-url a signed-out page load gets the Manager's own sign-in page.
    manager = start_manager(
        tmp_path / "data",
        tmp_path / "manager.log",
        "--opencode-bin",
        str(held),
        "--web-app-port",
        "0",
        "--web-app-url",
        "https://code.example:8443",
        env=isolated_environ(tmp_path / "home"),
    )
    try:
        app = manager.web_app_url()
        browser = requests.Session()
        page = {"Accept": "text/html"}
        answers = {"signed-out page": browser.get(app + "/", headers=page, timeout=10)}
        answers["signed-out call"] = browser.get(app + "/session", timeout=10)
        signed_in = browser.post(
            manager.url + "/signin",
            data={"token": manager.token},
            headers={"Origin": manager.url},
            timeout=10,
        )
        assert signed_in.status_code == 200, signed_in.text
        answers["cross-origin form"] = browser.post(
            app + "/session", headers={"Origin": "http://evil.example"}, timeout=10
        )
        answers["terminal"] = browser.post(app + "/pty", headers={"Origin": app}, timeout=10)
        answers["notice script"] = browser.get(app + NOTICE_PATH, timeout=10)
        answers["waiting page"] = browser.get(app + "/", headers=page, timeout=10)

        statuses = {name: answer.status_code for name, answer in answers.items()}
        assert statuses == {
            "signed-out page": 401,
            "signed-out call": 401,
            "cross-origin form": 403,
            "terminal": 501,
            "notice script": 200,
            "waiting page": 502,
        }
        for name, answer in answers.items():
            for header, value in EVERY_ANSWER:
                assert answer.headers.get(header) == value, (name, header, answer.headers)
        for name in ("signed-out page", "waiting page"):
            policy = answers[name].headers.get("Content-Security-Policy", "")
            assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy, name
    finally:
        manager.stop()
