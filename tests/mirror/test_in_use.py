"""A TUI attached through the proxy (an open event stream) makes push refuse until forced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.mirror.conftest import Cli
from tests.mirror.helpers import rich_repo
from tests.support import proctree
from tests.support.processes import RunningManager
from tests.support.sse import EventStream

pytestmark = pytest.mark.slow


def test_push_refuses_while_a_tui_is_attached(
    manager_factory: Callable[..., RunningManager], opencode_bin: str, tmp_path: Path
) -> None:
    manager = manager_factory("--opencode-bin", opencode_bin)
    manager.wait_for_opencode()
    ocm = Cli(manager)
    laptop = rich_repo(tmp_path / "laptop" / "proj")
    assert ocm(laptop, "push", "--create", "--yes").returncode == 0
    directory = manager.data_dir / "repos" / "proj"
    head_url = f"{manager.url}/api/internal/repo-mirror/1/head"
    auth = {"Authorization": f"Bearer {manager.token}"}

    events = EventStream(
        manager.url, "/api/opencode-proxy/global/event?directory=" + quote(str(directory)), auth
    )
    try:
        assert events.status() == 200
        events.read_until(b"server.connected")
        assert requests.get(head_url, headers=auth, timeout=30).json()["inUse"] is True
        (laptop / "README.md").write_text("laptop edit\n")
        done = ocm(laptop, "push")
        assert done.returncode == 1
        assert "a TUI is attached to proj (since " in done.stderr
        assert (directory / "README.md").read_text() != "laptop edit\n"
        done = ocm(laptop, "push", "--force")
        assert done.returncode == 0, done.stderr
        assert (directory / "README.md").read_text() == "laptop edit\n"
    finally:
        events.close()
    assert proctree.wait_until(
        lambda: requests.get(head_url, headers=auth, timeout=30).json()["inUse"] is False,
        timeout=30,
    )
