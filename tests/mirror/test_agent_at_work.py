"""A pull while OpenCode's agent is still running a turn on the Manager says so.

A real Manager runs the real OpenCode, whose LLM is the scripted stand-in on 127.0.0.1
(``tests.support.llm``): the agent really writes a file on the Manager, then its turn waits
(the stand-in holds its last answer) as a longer task would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.mirror.conftest import push_new
from tests.support.auth import bearer
from tests.support.env import isolated_environ
from tests.support.llm import ScriptedLLM, Turn
from tests.support.processes import Cli, RunningManager, start_manager
from tests.support.proctree import wait_until


@pytest.fixture
def manager(tmp_path: Path, opencode_bin: str) -> Iterator[tuple[RunningManager, ScriptedLLM]]:
    llm = ScriptedLLM([]).start()
    env = isolated_environ(tmp_path / "home") | llm.opencode_environment()
    manager = start_manager(
        tmp_path / "data", tmp_path / "manager.log", "--opencode-bin", opencode_bin, env=env
    )
    try:
        manager.wait_for_opencode()
        yield manager, llm
    finally:
        manager.stop()
        llm.stop()


def _busy(manager: RunningManager, directory: Path) -> bool:
    statuses = _proxy(manager, directory, "GET", "/session/status").json()
    return any(status.get("type") != "idle" for status in statuses.values())


def _proxy(
    manager: RunningManager, directory: Path, method: str, path: str, **kwargs: Any
) -> requests.Response:
    """A call the way ``ocm``'s TUI makes it: through the proxy, with the token."""
    answer = requests.request(
        method,
        f"{manager.url}/api/opencode-proxy{path}",
        params={"directory": str(directory)},
        headers=bearer(manager.token),
        timeout=180,
        **kwargs,
    )
    assert answer.status_code == 200, answer.text
    return answer


@pytest.mark.e2e
@pytest.mark.slow
def test_a_pull_during_an_agents_turn_says_more_is_coming(
    manager: tuple[RunningManager, ScriptedLLM], tmp_path: Path
) -> None:
    running, llm = manager
    ocm = Cli(running)
    p = push_new(ocm, tmp_path / "laptop" / "proj")
    written = p.directory / "plan.md"
    still_working = threading.Event()
    llm.add(Turn("write the plan", str(written), "step 1\n", "Done.", still_working))
    session = _proxy(running, p.directory, "POST", "/session", json={}).json()
    prompt = {"parts": [{"type": "text", "text": "please write the plan"}]}
    turn = threading.Thread(
        target=_proxy,
        args=(running, p.directory, "POST", f"/session/{session['id']}/message"),
        kwargs={"json": prompt},
        daemon=True,
    )
    turn.start()
    try:
        assert wait_until(written.exists, timeout=120)
        # OpenCode says the turn is running (the Manager asks it for 0.5 s at most while git
        # packs; on a loaded machine its first answer about this turn came later).
        assert wait_until(lambda: _busy(running, p.directory), timeout=60)
        pulled = ocm(p.laptop, "pull")
        assert pulled.returncode == 0, pulled.stderr
        assert (p.laptop / "plan.md").read_text() == "step 1\n"
        assert "the agent is still at work in proj (1 session running a turn)" in pulled.stdout
    finally:
        still_working.set()
        turn.join(timeout=180)
    assert not turn.is_alive()
    assert wait_until(lambda: "still at work" not in ocm(p.laptop, "pull").stdout, timeout=60), (
        "the note stayed after the turn ended"
    )
