"""An isolated environment for processes that outlive one test (module-scoped fixtures),
built the way the autouse ``isolated_env`` fixture builds it for a single test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def isolated_environ(home: Path) -> dict[str, str]:
    """HOME is ``home``; TMPDIR is ``tmp`` beside it (see ``isolated_env``)."""
    home.mkdir(parents=True, exist_ok=True)
    temp = home.with_name("tmp")
    temp.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OCM_", "OPENCODE_", "XDG_", "GIT_")) or key == "OCM_TEST_OPENCODE"
    }
    env.update(
        {
            "HOME": str(home),
            "TMPDIR": str(temp),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    return env


def without_opencode(folder: Path) -> dict[str, str]:
    """The test's environment with a PATH that has git and no ``opencode``: a Manager started
    with it and without --opencode-bin finds none (the test environment has no installed copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    git = shutil.which("git")
    assert git, "git is part of the test set-up"
    (folder / "git").symlink_to(git)
    return {**os.environ, "PATH": str(folder)}
