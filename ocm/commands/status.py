"""``ocm status``: what ocm would use right now, and whether the Manager answers.

Local facts first (URL, token store, last repo, ``opencode``, install), then one quick
``GET /api/health`` (:mod:`ocm.probe`) with the token, which says whether the Manager answers
and whether it takes that token: a Manager that is down is reported, never fatal. No HTTP
client library, and no keyring unless the token may be there.
"""

from __future__ import annotations

import json
import sys

from ocm import __version__, credentials, opencode, paths, probe
from ocm import state as state_mod
from ocm.commands.common import manager_url
from ocm.errors import OcmError
from ocm.printable import printable

TYPE_CHECKING = False  # no typing import at run time: status must start fast
if TYPE_CHECKING:
    from typing import Any


def _install_info() -> dict[str, Any] | None:
    """Where this ocm runs from and what ``~/.local/bin/ocm`` points to (None if unknown)."""
    try:
        from install.locate import describe  # noqa: PLC0415 - os/sys only, cheap

        return describe()
    except Exception:  # the report is a courtesy; status must not fail over it
        return None


def _health_text(health: probe.Health, host: str) -> str:
    if not health.reachable and health.proxy:
        where, variable = health.proxy
        return (
            f"NO, not through the proxy {where} that {variable} names ({health.reason}); fix"
            f" {variable}, or add {host} to no_proxy to reach the Manager directly"
        )
    if not health.reachable:
        return (
            f"NO, the Manager is not reachable ({health.reason}); an open TUI cannot work "
            'until it is back (OpenCode says "Creating a session failed")'
        )
    via = f" (through the proxy {health.proxy[0]} from {health.proxy[1]})" if health.proxy else ""
    return f"yes{via}, OpenCode on the Manager is {health.opencode_state or 'unknown'}"


def _align(line: str) -> str:
    label, _, text = line.partition(": ")
    return f"{label + ':':<10} {text}" if text else line


def status(*, as_json: bool) -> int:
    current = state_mod.load()
    try:
        where = manager_url(current)
        url_problem = None
    except OcmError as exc:  # a malformed OPENCODE_MANAGER_URL is worth showing, not dying on
        where, url_problem = None, exc.message
    problems = [p for p in (current.problem, url_problem) if p]
    refused = None  # why a stored token is not used, if it is refused
    try:
        token = credentials.find_token(where.url, current.keyring_for(where.url)) if where else None
    except OcmError as exc:  # e.g. credentials.json readable by others: refused, reported
        token, refused, problems = None, exc.what, [*problems, exc.message]
    sendable = None  # the token, when it can go in a header: the health check asks about it
    try:
        sendable = token.checked() if token else None
    except OcmError as exc:  # malformed: shown as present, with what to do, and never sent
        problems.append(exc.message)
    try:
        tui = opencode.locate()
    except OcmError as exc:
        tui, problems = None, [*problems, exc.message]
    else:
        if tui is None:
            problems.append(f"no `opencode` found; {opencode.install_hint()}")
    if tui is not None and tui.problem():
        problems.append(f"{tui.problem()}; install {opencode.pinned_spec()}")
    health = probe.check(where.url, sendable.token if sendable else None) if where else None
    last: dict[str, Any] | None = None
    if current.has_last_repo and (where is None or current.manager_url in (None, where.url)):
        last = {
            "repoId": current.last_repo_id,
            "name": current.last_repo_name,
            "branch": current.last_repo_branch,
            "directory": current.last_repo_dir,
        }
    report: dict[str, Any] = {
        "version": __version__,
        "managerUrl": where.url if where else None,
        "managerUrlSource": where.source if where else None,
        "loggedIn": bool(where and token),
        "token": {
            "present": token is not None,
            "store": token.store if token else None,
            "location": token.label if token else None,
            # True/False: the Manager said; None: not asked (unreachable, malformed) or not said
            "accepted": health.token == "accepted" if health and health.token else None,
        },
        "lastRepo": last,
        "managerHealth": health.to_json() if health else None,
        "opencode": tui.to_json() if tui else None,
        "configDir": str(paths.config_dir()),
        "problems": problems,
        "install": _install_info(),
    }
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    lines = [f"ocm {__version__}"]
    if where and health:
        lines.append(f"manager:   {where.url} (from {where.source})")
        lines.append(f"reachable: {_health_text(health, probe.host_of(where.url))}")
    else:
        lines.append("manager:   not logged in; run `ocm login <url>`")
    if token and where and health and health.token == "rejected":
        lines.append(
            f"token:     present, from {token.label}, but {where.url} rejects it (rotated, or "
            f"another Manager's); {token.renewal(where.url)}"
        )
    elif token:
        accepted = "; the Manager accepts it" if health and health.token == "accepted" else ""
        lines.append(f"token:     present, from {token.label}{accepted}")
    elif refused:  # not "none": one is there, and the warning says what to do about it
        lines.append(f"token:     not used: {refused} (see the warning below)")
    elif where:
        lines.append(f"token:     none for this URL; run `ocm login {where.url}`")
    else:
        lines.append("token:     none")
    if last:
        lines.append(
            f"last repo: #{last['repoId']} {last['name'] or ''} "
            f"({last['branch'] or '?'}) at {last['directory'] or '?'}"
        )
    else:
        lines.append("last repo: none")
    if tui:
        lines.append(f"opencode:  {tui.path} ({tui.version or 'version unknown'}, {tui.source})")
    else:
        lines.append("opencode:  not found")
    lines.append(f"config:    {paths.config_dir()}")
    if report["install"] is not None:
        from install.locate import summary_lines  # noqa: PLC0415

        lines.extend(_align(line) for line in summary_lines(report["install"]))
    lines.extend(f"warning:   {p}" for p in report["problems"])
    sys.stdout.write("".join(f"{printable(line)}\n" for line in lines))
    return 0
