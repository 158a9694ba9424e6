"""Which Manager repo a command means (SPEC §3): by id/name, by the checkout's origin, or last.

Plain functions over plain data (plus two ``git`` calls), so ``push``/``pull`` reuse them:
:func:`local_checkout` finds the git root of a directory and its ``origin``;
:func:`repos_for_origin` lists the ready Manager repos whose normalised origin matches;
:func:`find_repo` looks up ``ocm use`` arguments; :func:`resolve_target` applies the four
rules of bare ``ocm``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ocm.errors import OcmError
from ocm.origin import normalise_origin

if TYPE_CHECKING:  # the real import would pull in requests
    from ocm.api import Workspace
    from ocm.state import State


class Checkout(NamedTuple):
    """A local git repository: its top-level directory and ``origin`` URL (if any)."""

    root: Path
    origin: str | None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):  # no git, or cwd vanished
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def git_root(cwd: Path) -> Path | None:
    """The top-level directory of the git work tree containing ``cwd``, or None."""
    top = _git(cwd, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


class CheckoutProbe:
    """Both git queries for :func:`local_checkout`, started at once and collected later.

    Bare ``ocm`` starts them before asking the Manager for its repos, so git runs while the
    network is busy instead of after it.
    """

    def __init__(self, cwd: Path) -> None:
        self._procs: list[subprocess.Popen[str]] = []
        try:
            for args in (("rev-parse", "--show-toplevel"), ("remote", "get-url", "origin")):
                self._procs.append(
                    subprocess.Popen(
                        ["git", *args],
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
        except OSError:  # no git, or cwd vanished
            pass

    def result(self) -> Checkout | None:
        outputs: list[str | None] = []
        for proc in self._procs:
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.SubprocessError:
                proc.kill()
                proc.communicate()
                out = ""
            outputs.append(out.strip() if proc.returncode == 0 and out.strip() else None)
        if len(outputs) != 2 or outputs[0] is None:
            return None
        return Checkout(Path(outputs[0]), outputs[1])


def local_checkout(cwd: Path) -> Checkout | None:
    """The git checkout containing ``cwd`` and its ``origin`` (None outside a work tree)."""
    return CheckoutProbe(cwd).result()


def repos_for_origin(origin: str | None, workspaces: Sequence[Workspace]) -> list[Workspace]:
    """Ready repos whose normalised ``originUrl`` equals ``origin``'s."""
    if not origin:
        return []
    wanted = normalise_origin(origin)
    return [
        ws
        for ws in workspaces
        if ws.status == "ready" and ws.origin_url and normalise_origin(ws.origin_url) == wanted
    ]


def describe(ws: Workspace) -> str:
    return f"#{ws.repo_id} {ws.name} ({ws.branch})" if ws.branch else f"#{ws.repo_id} {ws.name}"


def ambiguous_origin_error(origin: str, matches: Sequence[Workspace]) -> OcmError:
    listed = ", ".join(describe(ws) for ws in matches)
    return OcmError(
        f"origin {origin} matches {len(matches)} Manager repos: {listed}",
        f"pick one with `ocm use <repoId>` (e.g. `ocm use {matches[0].repo_id}`)",
    )


def find_repo(workspaces: Sequence[Workspace], key: str) -> Workspace:
    """``ocm use`` lookup: repo id first, then exact name, then case-insensitive name."""
    text = key.strip()
    if text.isdigit():
        for ws in workspaces:
            if ws.repo_id == int(text):
                return ws
    exact = [ws for ws in workspaces if ws.name == text]
    if len(exact) == 1:
        return exact[0]
    folded = exact or [ws for ws in workspaces if ws.name.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    if folded:
        listed = ", ".join(describe(ws) for ws in folded)
        raise OcmError(
            f"{key!r} matches several repos: {listed}",
            f"use the repo id, e.g. `ocm use {folded[0].repo_id}`",
        )
    raise OcmError(
        f"no ready repo {key!r} on the Manager", "run `ocm list` to see repo ids and names"
    )


class Target(NamedTuple):
    """The repo bare ``ocm`` chose, and why (for the line it prints)."""

    workspace: Workspace
    reason: str


def resolve_target(
    checkout: Checkout | None, workspaces: Sequence[Workspace], state: State
) -> Target:
    """SPEC §3 rules: origin match → that repo; several → fail; else last used; else fail."""
    origin = checkout.origin if checkout else None
    matches = repos_for_origin(origin, workspaces)
    if len(matches) == 1:
        return Target(matches[0], f"origin {origin}")
    if len(matches) > 1:
        raise ambiguous_origin_error(origin or "", matches)
    if state.last_repo_id is not None:
        for ws in workspaces:
            if ws.repo_id == state.last_repo_id and ws.status == "ready":
                return Target(ws, "last used")
        raise OcmError(
            f"the last used repo #{state.last_repo_id} {state.last_repo_name or ''}".rstrip()
            + " is not ready on the Manager any more",
            "run `ocm list`, then `ocm use <repoId>`",
        )
    if checkout is None:
        where = "this directory is not in a git repo"
    elif origin is None:
        where = f"{checkout.root} has no origin remote"
    else:
        where = f"no Manager repo has origin {origin}"
    raise OcmError(
        f"{where} and no repo was used before", "run `ocm list`, then `ocm use <repoId>`"
    )
