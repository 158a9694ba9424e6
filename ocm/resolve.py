"""Which Manager repo a command means (SPEC §3): by id/name, by the checkout, or last.

A checkout is matched by its ``origin`` when it has one, else by its root commits.

Plain functions over plain data (plus a few ``git`` calls), so ``push``/``pull`` reuse them:
:func:`local_checkout` finds the git root of a directory, its ``origin`` and its root
commits; :func:`repos_for_checkout` lists the ready Manager repos that match it;
:func:`find_repo` looks up ``ocm use`` arguments; :func:`resolve_target` applies the four
rules of bare ``ocm``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ocm import root_commits
from ocm.errors import OcmError
from ocm.mirror.errors import MirrorError
from ocm.mirror.gitcmd import git_env
from ocm.origin import hide_credentials, names_a_folder, normalise_origin, repository_address

if TYPE_CHECKING:  # the real import would pull in http.client
    from ocm.api import Workspace
    from ocm.state import State


class GitMissing(OcmError):
    """Raised when ``git`` cannot be run to look at the checkout."""


class Checkout(NamedTuple):
    """A local git repository: its top-level directory and ``origin`` URL (if any).

    ``roots`` are the root commits of its HEAD (``git rev-list --max-parents=0 HEAD``),
    looked up only when there is no origin: they are what matches it then.
    """

    root: Path
    origin: str | None
    roots: tuple[str, ...] = ()

    def describe(self) -> str:
        """How this checkout is matched, for messages: its origin (a password or token in it
        shown as ``***``: the line may end up in a CI log) or its root commit."""
        if self.origin:
            return f"origin {hide_credentials(self.origin)}"
        if self.roots:
            more = f" (and {len(self.roots) - 1} more)" if len(self.roots) > 1 else ""
            return f"root commit {self.roots[0][:12]}{more}"
        return "no origin and no commit"


def current_folder() -> Path:
    """The folder the command runs in; an error saying so when it was deleted (or moved)
    after the shell entered it, where ``Path.cwd`` fails."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise OcmError(
            "the folder this shell is in no longer exists (deleted or moved since it was entered)",
            "`cd` into the checkout again, then run the command again",
        ) from None


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


_PROBES = (
    ("rev-parse", "--show-toplevel"),
    ("remote", "get-url", "origin"),
    ("rev-parse", "-q", "--verify", "HEAD"),
)


class CheckoutProbe:
    """The git queries for :func:`local_checkout`, started at once and collected later.

    Bare ``ocm`` starts them before asking the Manager for its repos, so git runs while the
    network is busy instead of after it. Root commits are asked only when the checkout has
    no origin, from the answer kept for an earlier HEAD (:mod:`ocm.root_commits`): a walk
    of the whole history, 0.5-2.5 s on 500,000 commits, comes once per history.
    """

    def __init__(self, cwd: Path) -> None:
        self._procs: list[subprocess.Popen[str]] = []
        self._no_git = False
        try:
            for args in _PROBES:
                self._procs.append(
                    subprocess.Popen(
                        ["git", *args],
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        # No GIT_DIR or GIT_WORK_TREE of a hook that called ocm: this
                        # checkout is the one the user stands in. Paths as os.fsdecode reads them.
                        env=git_env(),
                        encoding=sys.getfilesystemencoding(),
                        errors="surrogateescape",
                    )
                )
        except FileNotFoundError as exc:  # no git (or cwd vanished: then it is not git)
            self._no_git = exc.filename == "git"
        except OSError:
            pass

    def result(self) -> Checkout | None:
        """The checkout, None outside one; raises GitMissing when git cannot be run, which
        would otherwise read as "not inside a git repository"."""
        if self._no_git:
            raise GitMissing(
                "cannot run git: it is not installed, or not on PATH",
                "install git, then run the command again",
            )
        if len(self._procs) != len(_PROBES):
            self._stop(self._procs)
            return None
        top, origin, head = (self._output(proc) for proc in self._procs)
        if top is None or origin is not None:
            return None if top is None else Checkout(Path(top), origin)
        return Checkout(Path(top), None, _root_commits(Path(top), head))

    @staticmethod
    def _output(proc: subprocess.Popen[str], timeout: float = 30) -> str | None:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.SubprocessError:
            proc.kill()
            proc.communicate()
            out = ""
        return out.strip() if proc.returncode == 0 and out.strip() else None

    @staticmethod
    def _stop(procs: list[subprocess.Popen[str]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _root_commits(top: Path, head: str | None) -> tuple[str, ...]:
    """The root commits of ``head`` (None: no commit yet, or git cannot say); none when git
    cannot walk."""
    if head is None:
        return ()
    try:
        return tuple(root_commits.kept_walk(top, head).roots)
    except MirrorError:
        return ()


def local_checkout(cwd: Path) -> Checkout | None:
    """The git checkout containing ``cwd``, its ``origin`` or else its root commits.

    None outside a work tree.
    """
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


def repos_for_roots(roots: Sequence[str], workspaces: Sequence[Workspace]) -> list[Workspace]:
    """Ready repos whose HEAD shares a root commit with ``roots``.

    Any shared root counts, not only the oldest: a history that merged in another
    project's (two roots) still matches a checkout of either side.
    """
    wanted = set(roots)
    if not wanted:
        return []
    return [ws for ws in workspaces if ws.status == "ready" and wanted & set(ws.root_commits)]


def repos_for_checkout(checkout: Checkout, workspaces: Sequence[Workspace]) -> list[Workspace]:
    """SPEC §3: by origin when the checkout has one (as before), else by root commit."""
    if checkout.origin:
        return repos_for_origin(checkout.origin, workspaces)
    return repos_for_roots(checkout.roots, workspaces)


class AnotherUrl(NamedTuple):
    """Ready repos whose origin names a checkout's repository by another URL."""

    repos: list[Workspace]
    said: str  # which, for a message
    command: str  # the git command that makes the first one's URL the checkout's origin


def by_another_url(checkout: Checkout | None, workspaces: Sequence[Workspace]) -> AnotherUrl | None:
    """For a checkout no repo matches: the repos whose origin names its repository by
    another URL (``https://host/x`` for ``git@host:x``). SPEC §3 does not match them, but
    they are most likely this very project, and the line that says nothing matches names
    them rather than advise ``ocm push --create``, which would make a second copy."""
    if checkout is None or not checkout.origin:
        return None
    address = repository_address(checkout.origin)
    alike = [
        ws
        for ws in workspaces
        if ws.status == "ready" and ws.origin_url and repository_address(ws.origin_url) == address
    ]
    if not alike:
        return None
    named = ", ".join(f"{describe(ws)} has origin {ws.origin_url}" for ws in alike)
    said = f"{named}: the same repository by another URL, and origins match only as written"
    # Quoted: the URL is the Manager's to choose, and the command is there to be pasted.
    command = f"git remote set-url origin {shlex.quote(alike[0].origin_url or '')}"
    return AnotherUrl(alike, said, command)


def describe(ws: Workspace) -> str:
    return f"#{ws.repo_id} {ws.name} ({ws.branch})" if ws.branch else f"#{ws.repo_id} {ws.name}"


def ambiguous_error(
    checkout: Checkout, matches: Sequence[Workspace], *, mirror: bool = False
) -> OcmError:
    """Several repos match: list them. ``mirror``: push/pull, which take the last used one."""
    listed = ", ".join(describe(ws) for ws in matches)
    todo = f"pick one with `ocm use <repoId>` (e.g. `ocm use {matches[0].repo_id}`)"
    if mirror:
        todo += ", then run the command again: it takes the last used of them"
    return OcmError(f"{checkout.describe()} matches {len(matches)} Manager repos: {listed}", todo)


def mirror_target(
    checkout: Checkout, workspaces: Sequence[Workspace], last_repo_id: int | None
) -> Workspace | None:
    """The repo push/pull mirror to: the one match, or the last used one among several.

    ``ocm use`` is the way to pick among several (bare ``ocm`` says so), so push and pull
    honour that pick instead of refusing forever.
    """
    matches = repos_for_checkout(checkout, workspaces)
    if len(matches) > 1:
        chosen = [ws for ws in matches if ws.repo_id == last_repo_id]
        if not chosen:
            raise ambiguous_error(checkout, matches, mirror=True)
        return chosen[0]
    return matches[0] if matches else None


def own_copy(
    checkout: Checkout,
    workspaces: Sequence[Workspace],
    last_with: Collection[int],
    holds_history_of: Callable[[Workspace], bool],
) -> Workspace | None:
    """For a checkout no repo matches: its own copy, if that repo's origin is no server's
    (:func:`~ocm.origin.names_a_folder`): the one its last push or pull was with (an id in
    ``last_with``), or the one added from its folder (``repo add`` records the path) when
    the checkout holds that repo's history (``holds_history_of``): a folder of the same
    path on another machine, or one whose ``.git`` was made anew, is another project. An
    origin added since, or a first commit amended, changes what the checkout is matched by,
    not which copy on the Manager is its own."""
    folder = normalise_origin(str(checkout.root.resolve()))
    for ws in workspaces:
        origin = normalise_origin(ws.origin_url or "")
        if ws.status != "ready" or not names_a_folder(origin):
            continue
        if ws.repo_id in last_with or (origin == folder and holds_history_of(ws)):
            return ws
    return None


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
    """SPEC §3 rules: a match (origin, else root commit) → that repo; several → fail; else
    last used; else fail."""
    matches = repos_for_checkout(checkout, workspaces) if checkout else []
    if len(matches) == 1 and checkout:
        return Target(matches[0], checkout.describe())
    if len(matches) > 1 and checkout:
        raise ambiguous_error(checkout, matches)
    another = by_another_url(checkout, workspaces)
    if state.last_repo_id is not None:
        for ws in workspaces:
            if ws.repo_id == state.last_repo_id and ws.status == "ready":
                # Said, since the TUI then works on another project than the one here.
                why = f"; {checkout.root} matches no Manager repo" if checkout else ""
                if another:
                    why += f", though {another.said}"
                return Target(ws, f"last used{why}")
        raise OcmError(
            f"the last used repo #{state.last_repo_id} {state.last_repo_name or ''}".rstrip()
            + " is not ready on the Manager any more",
            "run `ocm list`, then `ocm use <repoId>`",
        )
    if checkout is None:
        where = "this directory is not in a git repo"
    elif checkout.origin is None and not checkout.roots:
        where = f"{checkout.root} has no origin remote and no commit yet"
    elif checkout.origin is None:
        where = f"no Manager repo has the {checkout.describe()} of {checkout.root} (no origin)"
    else:
        where = f"no Manager repo has {checkout.describe()}"
    todo = "run `ocm list`, then `ocm use <repoId>`"
    where += " and no repo was used before"
    if another:
        where += f", though {another.said}"
        todo = (
            f"attach to it with `ocm use {another.repos[0].repo_id}`, and for `ocm push` and "
            f"`ocm pull` make its URL this checkout's origin: `{another.command}`"
        )
    elif checkout is not None and (checkout.origin or checkout.roots):
        # The first hour: the project is not on the Manager yet, which may hold no repo.
        todo = f"put this checkout on the Manager with `ocm push --create`, or {todo}"
    raise OcmError(where, todo)
