"""Manager fixtures, each started once per test module: a Manager running the real OpenCode
(``live``; a module overrides ``live_serve_args`` to give ``serve`` more flags), and a Manager
in front of the recording stand-in for OpenCode (``upstream``, ``proxied``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import RunningManager, opencode_manager, start_manager
from tests.support.upstream import RecordingUpstream, stand_in_env


def start_proxied(root: Path, upstream_url: str, *extra: str) -> RunningManager:
    """A Manager whose OpenCode is ``upstream_url`` (``--opencode-url``), with ``PASSWORD``."""
    return start_manager(
        root / "data",
        root / "manager.log",
        "--opencode-url",
        upstream_url,
        *extra,
        env=stand_in_env(root / "home"),
    )


def proxy_url(manager: RunningManager, rest: str) -> str:
    return f"{manager.url}/api/opencode-proxy{rest}"


@pytest.fixture(scope="module")
def live_serve_args() -> tuple[str, ...]:
    return ()


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, opencode_bin: str, live_serve_args: tuple[str, ...]
) -> Iterator[RunningManager]:
    root = tmp_path_factory.mktemp("live")
    with opencode_manager(root, opencode_bin, *live_serve_args) as running:
        yield running


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def proxied(
    upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningManager]:
    running = start_proxied(tmp_path_factory.mktemp("proxied"), upstream.url)
    yield running
    running.stop()
