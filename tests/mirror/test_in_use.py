"""A TUI attached through the proxy (an open event stream) makes push refuse until forced."""

from __future__ import annotations

import pytest

from tests.mirror.conftest import TuiScene
from tests.support import proctree

pytestmark = pytest.mark.slow


def test_push_refuses_while_a_tui_is_attached(tui_scene: TuiScene) -> None:
    ocm, laptop, directory = tui_scene.ocm, tui_scene.p.laptop, tui_scene.p.directory
    events = tui_scene.attach()
    try:
        assert tui_scene.head()["inUse"] is True
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
    assert proctree.wait_until(lambda: tui_scene.head()["inUse"] is False, timeout=30)
