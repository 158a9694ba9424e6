"""Hand the terminal to the OpenCode TUI: the only ``os.exec*`` in ocm (SPEC §3 Attach).

The TUI replaces the ``ocm`` process. The token goes into the child's environment as
``OPENCODE_SERVER_PASSWORD`` and never onto its command line, where ``ps`` shows it to every
local user.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn

from ocm.errors import OcmError
from ocm.opencode import install_hint


def attach_argv(binary: str, manager_url: str, directory: str) -> list[str]:
    return [
        binary,
        "attach",
        f"{manager_url}/api/opencode-proxy",
        "--dir",
        directory,
        "--username",
        "opencode",
    ]


def attach_env(
    base: Mapping[str, str], manager_url: str, token: str, repo_name: str
) -> dict[str, str]:
    env = dict(base)
    env["OPENCODE_SERVER_PASSWORD"] = token
    env["OCM_REMOTE_MANAGER_URL"] = manager_url
    env["OCM_REMOTE_REPO_NAME"] = repo_name
    return env


def exec_attach(
    binary: str, manager_url: str, token: str, directory: str, repo_name: str
) -> NoReturn:
    """Replace this process with ``opencode attach``; returns only by raising."""
    argv = attach_argv(binary, manager_url, directory)
    env = attach_env(os.environ, manager_url, token, repo_name)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execvpe(binary, argv, env)
    except OSError as exc:
        raise OcmError(
            f"cannot start {binary} ({exc.strerror or exc})", f"check the file, or {install_hint()}"
        ) from None
