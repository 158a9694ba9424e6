"""``ocm list``, ``ocm use`` and bare ``ocm``: pick a Manager repo and attach the TUI to it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from ocm import launch, opencode, resolve
from ocm import state as state_mod
from ocm.api import ManagerClient, Workspace
from ocm.commands.common import Login, connect, last_repo_state, note, remember
from ocm.errors import OcmError
from ocm.printable import cells, pad, printable


def list_repos(*, as_json: bool) -> int:
    with connect()[0] as client:
        repos = client.workspaces()
    if as_json:
        json.dump([ws.to_json() for ws in repos], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not repos:
        note(
            f"no ready repos on {client.url}; add one with `ocm push --create` from a "
            "checkout, or `ocm-manager repo add` on the Manager"
        )
        return 0
    _print_table(repos)
    return 0


def _print_table(repos: Sequence[Workspace]) -> None:
    rows = [("ID", "NAME", "BRANCH", "STATUS")] + [
        (str(ws.repo_id), printable(ws.name), printable(ws.branch_label), printable(ws.status))
        for ws in repos
    ]
    # In terminal columns, not characters: a branch in CJK takes two a character. STATUS,
    # the last, is not padded.
    widths = [max(cells(row[i]) for row in rows) for i in range(3)] + [0]
    for row in rows:
        padded = [pad(text, width) for text, width in zip(row, widths, strict=True)]
        sys.stdout.write("  ".join(padded) + "\n")


def use(*, repo: str) -> int:
    current = state_mod.load()
    client, login = connect(current)
    with client:
        ws = resolve.find_repo(client.workspaces(), repo)
        # Remembered even when no TUI can attach: push and pull take the last used repo
        # among several with one origin, and their advice is this command (a laptop
        # installed with --no-opencode has no other way to pick).
        remember(current, login, ws)
        try:
            binary = opencode.require().path
            return _attach(client, login, binary, ws, reason="ocm use")
        except OcmError as missing:  # no TUI here, or no OpenCode on the Manager
            raise OcmError(
                f"{missing.what} (#{ws.repo_id} {ws.name} is remembered as the last used repo, "
                "for `ocm push` and `ocm pull`)",
                missing.todo,
            ) from None


def attach_default() -> int:
    """Bare ``ocm``: the repo matching this checkout's origin, else the last used one."""
    current = state_mod.load()
    client, login = connect(current)
    with client:
        probe = resolve.CheckoutProbe(resolve.current_folder())
        workspaces = client.workspaces()
        try:
            checkout = probe.result()
        except resolve.GitMissing as exc:
            raise OcmError(
                exc.what, "install git, or attach by name: `ocm use <name>` (`ocm list`)"
            ) from None
        target = resolve.resolve_target(checkout, workspaces, last_repo_state(current, login))
        # Before anything is saved: a missing or unusable TUI changes nothing.
        binary = opencode.require().path
        remember(current, login, target.workspace)
        return _attach(client, login, binary, target.workspace, reason=target.reason)


# As long as the Manager itself waits for its OpenCode to start (a first start installs).
OPENCODE_START_WAIT = 180.0


def _wait_for_opencode(client: ManagerClient) -> None:
    """The TUI quits at its first failed request, and the proxy answers 502 to one that
    waited 30 s for a starting OpenCode: wait here while the Manager says it is starting."""
    deadline, said = time.monotonic() + OPENCODE_START_WAIT, False
    while client.opencode_state() == "starting" and time.monotonic() < deadline:
        if not said:
            note("waiting for OpenCode on the Manager to start")
            said = True
        time.sleep(0.5)


def _attach(client: ManagerClient, login: Login, binary: str, ws: Workspace, *, reason: str) -> int:
    # Asked first: a Manager with no OpenCode at all ends in one line, not "attaching" and
    # then why not.
    warm = client.warm_up(ws.directory)
    note(f"attaching to #{ws.repo_id} {ws.name} ({ws.branch_label}) on {login.url} [{reason}]")
    if not warm:
        _wait_for_opencode(client)
    launch.exec_attach(binary, login.url, login.token.token, ws.directory, ws.name)
