"""Mirror fixtures: the ``ocm`` CLI pointed at a real Manager, and a pushed repo."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mirror.helpers import rich_repo
from tests.support.processes import RunningManager, ocm_command


@dataclass
class Cli:
    manager: RunningManager

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPENCODE_MANAGER_URL": self.manager.url,
            "OCM_TOKEN": self.manager.token,
        }

    def __call__(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ocm_command(*args),
            cwd=cwd,
            env=self.env(),
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def repos(self, cwd: Path) -> list[dict]:
        done = self(cwd, "list", "--json")
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        return data["repos"] if isinstance(data, dict) else data


@pytest.fixture
def ocm(manager: RunningManager) -> Cli:
    return Cli(manager)


@dataclass
class Pushed:
    laptop: Path
    repo_id: int
    directory: Path


@pytest.fixture
def pushed(ocm: Cli, tmp_path: Path) -> Callable[..., Pushed]:
    """``pushed(name)``: a rich repo on the 'laptop', pushed with ``--create --yes``."""

    def make(name: str = "proj") -> Pushed:
        laptop = rich_repo(
            tmp_path / "laptop" / name, origin=f"https://example.invalid/org/{name}.git"
        )
        done = ocm(laptop, "push", "--create", "--yes")
        assert done.returncode == 0, done.stderr
        repo = next(r for r in ocm.repos(laptop) if r["name"] == name)
        return Pushed(
            laptop, int(repo.get("repoId", repo.get("id"))), ocm.manager.data_dir / "repos" / name
        )

    return make
