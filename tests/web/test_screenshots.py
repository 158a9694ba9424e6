"""The README's pictures of the console, taken from a real Manager in a real browser.

Desktop and phone width, light and dark. Every run takes them (and checks them) in a temporary
directory; with ``OCM_UPDATE_SCREENSHOTS=1`` they replace ``docs/console-*.png`` in the
checkout, which the README shows — so a test run does not dirty the tree, and one command
brings the pictures up to date with the pages.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.auth import bearer
from tests.support.git import write_files
from tests.support.processes import RunningManager
from tests.web.test_console import json_twin, laptop_round_trip, row

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Read at import: the autouse isolated_env fixture clears OCM_* before each test runs.
UPDATE = os.environ.get("OCM_UPDATE_SCREENSHOTS") == "1"
DESKTOP = {"width": 1180, "height": 620}
PHONE = {"width": 390, "height": 780}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def shoot(page: Any, folder: Path, name: str, **options: Any) -> Path:
    path = folder / name
    page.screenshot(path=str(path), **options)
    assert path.stat().st_size < 400_000, f"{name} is too big for the README"
    return path


def test_screenshots_for_the_readme(
    live: RunningManager,  # noqa: F811 - the fixture
    new_page: Callable[..., Any],
    sign_in: Callable[..., Any],
    git_repo: Callable[..., Path],
    tmp_path: Path,
) -> None:
    folder = DOCS if UPDATE else tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    sources = [
        git_repo("webapp", origin="git@github.com:acme/webapp.git"),
        git_repo("payments", origin="git@github.com:acme/payments.git"),
    ]
    page = new_page(viewport=DESKTOP, color_scheme="light")
    page.goto(live.url)
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    # The answer's page, loaded: a shot taken while the form's navigation runs fails.
    page.locator("p.message[role=alert]").wait_for()
    page.wait_for_load_state("load")
    signin = shoot(page, folder, "console-signin.png")

    sign_in(page, live)
    for source in sources:
        page.fill("input[name=source]", str(source))
        page.click("text=Add repo")
        row(page, source.name).locator(".state-ready").wait_for(timeout=30_000)
    repos = {r["name"]: r for r in json_twin(page, "/repos?format=json")["repos"]}
    webapp = repos["webapp"]
    # Someone pulled and pushed, started a session, and left a change on the Manager.
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    laptop_round_trip(live, sources[0], laptop / "webapp")
    requests.post(
        f"{live.url}/api/opencode-proxy/session",
        params={"directory": webapp["directory"]},
        json={},
        headers=bearer(live.token),
        timeout=30,
    ).raise_for_status()
    write_files(Path(webapp["directory"]), {"TODO.md": "- ship it\n"})
    webapp_row = row(page, "webapp")
    webapp_row.locator("[data-label='Last push']", has_text=os.uname().nodename).wait_for()
    webapp_row.locator("[data-label='OpenCode sessions']", has_text="1").wait_for()
    webapp_row.locator("[data-label=Uncommitted]", has_text="1 file").wait_for()
    desktop = shoot(page, folder, "console-repos.png")

    phone = new_page(viewport=PHONE, color_scheme="dark", is_mobile=True, has_touch=True)
    sign_in(phone, live)
    last_push = row(phone, "webapp").locator("[data-label='Last push']")
    last_push.filter(has_text=os.uname().nodename).wait_for()
    # On a phone the table turns into one card per repo, every value labelled.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.locator("thead").is_hidden()
    phone_shot = shoot(phone, folder, "console-repos-phone.png")

    page.click("nav >> text=Settings")
    page.check("input[name=confirm]")
    page.click("button.danger")
    hidden = {"mask": [page.locator("#new-token")], "mask_color": "#9aa4ae"}
    token_shot = shoot(page, folder, "console-token.png", **hidden)

    page.click("nav >> text=Health")
    page.locator("dl.facts", has_text="running").wait_for()
    health = shoot(page, folder, "console-health.png")

    assert png_size(desktop) == (DESKTOP["width"], DESKTOP["height"])
    assert png_size(phone_shot) == (PHONE["width"], PHONE["height"])
    for path in (signin, token_shot, health):
        assert png_size(path) == (DESKTOP["width"], DESKTOP["height"])
