"""Mirror fixtures: the ``ocm`` CLI pointed at a real Manager, a pushed repo, and the scenes
several test files build on it: both sides changed, and a TUI attached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.mirror.helpers import rich_repo
from tests.support.auth import bearer
from tests.support.git import git
from tests.support.processes import Cli, RunningManager
from tests.support.sse import EventStream


@pytest.fixture
def ocm(manager: RunningManager) -> Cli:
    return Cli(manager)


@dataclass
class Pushed:
    laptop: Path
    repo_id: int
    directory: Path


def push_new(ocm: Cli, laptop: Path) -> Pushed:
    """A rich repo made at ``laptop``, pushed with ``--create --yes``: a new Manager repo named
    after the folder, with origin ``https://example.invalid/org/<name>.git``."""
    name = laptop.name
    rich_repo(laptop, origin=f"https://example.invalid/org/{name}.git")
    done = ocm(laptop, "push", "--create", "--yes")
    assert done.returncode == 0, done.stderr
    repo = next(r for r in ocm.repos(laptop) if r["name"] == name)
    return Pushed(
        laptop, int(repo.get("repoId", repo.get("id"))), ocm.manager.data_dir / "repos" / name
    )


@pytest.fixture
def pushed(ocm: Cli, tmp_path: Path) -> Callable[..., Pushed]:
    """``pushed(name)``: a rich repo on the 'laptop', pushed with ``--create --yes``."""

    def make(name: str = "proj") -> Pushed:
        return push_new(ocm, tmp_path / "laptop" / name)

    return make


def agent_commits(p: Pushed) -> str:
    """An agent commits a new file on the Manager's copy; the commit it made."""
    (p.directory / "agent.txt").write_text("committed by an agent\n")
    git(p.directory, "add", "agent.txt")
    git(p.directory, "commit", "-q", "-m", "agent commit")
    return git(p.directory, "rev-parse", "HEAD")


def commit_on_laptop(p: Pushed, text: str = "committed on the laptop\n") -> str:
    """The laptop commits ``text`` as laptop.txt, not pushed; the commit it made."""
    (p.laptop / "laptop.txt").write_text(text)
    git(p.laptop, "add", "laptop.txt")
    git(p.laptop, "commit", "-q", "-m", "laptop commit")
    return git(p.laptop, "rev-parse", "HEAD")


def both_sides_change(p: Pushed) -> None:
    """Uncommitted work on both sides, a changed file and a new one each: an agent's on the
    Manager's copy, and the laptop's."""
    (p.directory / "README.md").write_text("agent edit\n")
    (p.directory / "agent-notes.md").write_text("agent's untracked file\n")
    (p.laptop / "src/app.py").write_text("print('laptop')\n")
    (p.laptop / "laptop-notes.md").write_text("laptop's untracked file\n")


@dataclass
class TuiScene:
    """A repo pushed to a Manager that runs the real OpenCode, where a TUI can attach."""

    ocm: Cli
    p: Pushed

    def attach(self) -> EventStream:
        """A TUI attaches: an event stream through the proxy for the repo's directory."""
        url, token = self.ocm.manager.url, self.ocm.manager.token
        path = "/api/opencode-proxy/global/event?directory=" + quote(str(self.p.directory))
        events = EventStream(url, path, bearer(token))
        assert events.status() == 200
        events.read_until(b"server.connected")
        return events

    def head(self) -> dict[str, Any]:
        """The Manager's ``/head`` of the repo: ``inUse``, ``inUseSince`` and the rest."""
        url = f"{self.ocm.manager.url}/api/internal/repo-mirror/{self.p.repo_id}/head"
        return dict(requests.get(url, headers=bearer(self.ocm.manager.token), timeout=30).json())


@pytest.fixture
def tui_scene(
    manager_factory: Callable[..., RunningManager], opencode_bin: str, tmp_path: Path
) -> TuiScene:
    manager = manager_factory("--opencode-bin", opencode_bin)
    manager.wait_for_opencode()
    ocm = Cli(manager)
    return TuiScene(ocm, push_new(ocm, tmp_path / "laptop" / "proj"))
