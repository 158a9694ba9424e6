"""What a refused push or pull says, and the way forward it names (SPEC §6, issue 14).

Every refusal names a next step that works from where the user stands, and no step leads
back to the refusal it came from: push never answers "pull first" when the pull would
refuse in turn, and when both sides have work the advice is the sequence that keeps both
(``ocm pull --force`` keeps this checkout's work as a stash and backup refs, git brings it
back, ``ocm push`` sends the lot).

The facts (:class:`Work`) come from the Manager's ``/head`` and this checkout's git
(:func:`manager_work`, :func:`local_work`, :func:`manager_changed`); the wording is plain
functions over them (:func:`push_refused`, :func:`pull_refused`), testable without either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ocm.errors import ConflictError
from ocm.mirror import gitcmd, history
from ocm.mirror.state import RepoState, at_risk, read_marker

CODE = "would_lose_work"
SOME = -1  # Work.commits when there are commits but their number is not known here


class Work(NamedTuple):
    """What one side has that the other side lacks."""

    uncommitted: bool = False
    commits: int = 0  # commits on the branch that the other side lacks (SOME: not counted)
    detached: int = 0  # commits only this checkout's detached HEAD holds (a pull leaves them)

    def __bool__(self) -> bool:
        return self.uncommitted or self.commits != 0 or self.detached != 0

    def describe(self, branch: str | None) -> str:
        parts = ["uncommitted changes"] if self.uncommitted else []
        on = f" on {branch}" if branch else ""
        if self.commits == SOME:
            parts.append(f"new commits{on}")
        elif self.commits:
            parts.append(_commits(self.commits) + on)
        if self.detached:
            parts.append(f"{_commits(self.detached)} on a detached HEAD")
        return " and ".join(parts)


def _commits(count: int) -> str:
    return f"{count} commit{'s' if count > 1 else ''}"


# ----------------------------------------------------------------------------- the facts


def _has_commit(root: Path, oid: str) -> bool:
    return gitcmd.ok(root, "cat-file", "-e", f"{oid}^{{commit}}")


def _manager_uncommitted(root: Path, head: Mapping[str, Any]) -> bool:
    """Whether the Manager's work tree holds changes this checkout lacks: the state this
    checkout's last transfer left is known to both; the state the Manager's last transfer
    left may be another checkout's, and then it is work this one never had."""
    snapshot = head.get("snapshot")
    return bool(head.get("dirty")) and (
        snapshot is None or snapshot != read_marker(root).get("snapshot")
    )


def manager_work(root: Path, head: Mapping[str, Any], ours: str | None) -> Work:
    """The Manager's work a push of commit ``ours`` would overwrite, from its ``/head``."""
    theirs, commits = head.get("branchHead"), 0
    if theirs and ours and theirs != ours:
        known = _has_commit(root, theirs)
        commits = history.commits_lacking(root, theirs, ours) if known else SOME
    return Work(_manager_uncommitted(root, head), commits, _manager_detached(root, head, ours))


def _manager_detached(root: Path, head: Mapping[str, Any], ours: str | None) -> int:
    """The commits only the Manager's detached HEAD holds (``/head`` counts them), unless
    the push of ``ours`` brings them: moving its HEAD would leave them, which it refuses."""
    count, at = head.get("detachedOnly"), str(head.get("head"))
    if not isinstance(count, int) or count <= 0 or at == ours or not gitcmd.is_oid(at):
        return 0
    if ours and _has_commit(root, at) and history.is_ancestor(root, at, ours):
        return 0
    return count


def local_work(
    root: Path, state: RepoState, branch: str | None, head: Mapping[str, Any], theirs: str | None
) -> Work:
    """This checkout's work that the Manager lacks: what ``ocm pull`` would refuse over.

    ``theirs`` is the Manager's commit for ``branch``. When this checkout does not have it,
    its own commits are counted as new unless the Manager lists the tip among its own, or
    says its history holds it (``mergedTip``: a fresh clone behind the Manager's branch).
    """
    marker = read_marker(root)
    uncommitted = at_risk(state, {marker.get("snapshot")})
    ours, commits = (history.branch_tip(root, branch) if branch else None), 0
    if ours and theirs and ours != theirs:
        if _has_commit(root, theirs):
            commits = history.commits_lacking(root, ours, theirs)
        elif ours not in (*(head.get("tips") or ()), marker.get("head"), head.get("mergedTip")):
            commits = SOME
    return Work(uncommitted, commits, _detached_only(root, state, head))


def _detached_only(root: Path, state: RepoState, head: Mapping[str, Any]) -> int:
    """The commits only this checkout's detached HEAD holds, which a pull of the Manager's
    HEAD would leave behind (its receiving side refuses over them unforced); none when the
    Manager says its HEAD holds them (``mergedTip``)."""
    theirs = str(head.get("head"))
    if state.branch is not None or not state.head or state.head in (theirs, head.get("mergedTip")):
        return 0
    known = theirs if gitcmd.is_oid(theirs) and _has_commit(root, theirs) else None
    return history.orphaned_by_move(root, state.head, known)


def rewritten_here(root: Path, head: Mapping[str, Any], ours: str | None) -> bool:
    """Whether the Manager's branch is where this checkout's last transfer left it, and this
    checkout has rewritten that history since (``commit --amend``, a rebase, a reset): the
    commits the push lacks are then this checkout's own old ones, none of the Manager's."""
    theirs = head.get("branchHead")
    return bool(theirs) and theirs != ours and theirs == read_marker(root).get("head")


def manager_changed(root: Path, head: Mapping[str, Any], ours: str | None) -> bool:
    """Whether the Manager has work this checkout lacks (so a push would be refused)."""
    if _manager_uncommitted(root, head):
        return True
    theirs = head.get("head")
    if not theirs or theirs == ours:
        return False
    return not (ours and _has_commit(root, theirs) and history.is_ancestor(root, theirs, ours))


# ----------------------------------------------------------------------------- the words


def since_text(started: float, now: float | None = None) -> str:
    """``14:03, 12 min ago`` (local time; the date too when it was not today)."""
    now = time.time() if now is None else now
    local, today = time.localtime(started), time.localtime(now)
    same_day = local[:3] == today[:3]
    clock = time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", local)
    minutes = max(0, int(now - started) // 60)
    if minutes < 1:
        age = "just now"
    elif minutes < 60:
        age = f"{minutes} min ago"
    else:
        age = f"{minutes // 60} h {minutes % 60} min ago"
    return f"{clock}, {age}"


def _force(manager: Work, branch: str | None) -> str:
    kept = ["its uncommitted changes as a stash"] if manager.uncommitted else []
    if manager.commits:
        kept.append(f"its old {branch or 'HEAD'} under refs/ocm/backup/")
    if manager.detached:
        kept.append("its detached HEAD's commits under refs/ocm/backup/")
    return f"or run `ocm push --force` (the Manager keeps {' and '.join(kept)})"


def _tui(repo: str, since: float | None) -> str:
    return f"a TUI is attached to {repo}" + (f" (since {since_text(since)})" if since else "")


def _kept_here(here: Work) -> str:
    kept = ["your commits under refs/ocm/backup/"] if here.commits else []
    if here.detached:
        kept.append("your detached HEAD's commits under refs/ocm/backup/")
    if here.uncommitted:
        kept.append("your uncommitted changes as a stash")
    return " and ".join(kept)


def _keep_both(
    here: Work,
    dirty: bool,
    before_push: str = "",
    branch: str | None = None,
    switches_to: str | None = None,
) -> str:
    """The sequence that keeps this checkout's work and the Manager's, ending in a push.
    ``dirty``: the Manager's work tree has uncommitted changes, which the pull brings as such.
    ``switches_to``: the Manager's branch, when the pull switches this checkout from
    ``branch`` to it: the commits on ``branch`` then stay where they are, with no backup to
    merge back (the push that ends the sequence sends ``switches_to``). A detached HEAD's
    own commits have no branch to stay on: the forced pull keeps them as a backup ref.

    ``git merge`` refuses to run over uncommitted changes, and ``git stash pop`` over
    unstaged ones to the files it touches: what the pull brought is committed before a
    merge, or staged before the stash is applied.
    """
    if switches_to and branch:
        leaving = f", leaving your commits on {branch}," if here.commits else ""
        here = here._replace(commits=0)
        kept = f" and keeps {_kept_here(here)} here" if here.uncommitted else ""
        pull = "`ocm pull --force`" if here.uncommitted else "`ocm pull`"
        steps = [f"{pull} (it switches this checkout to {switches_to}{leaving}{kept})"]
    else:
        steps = [f"`ocm pull --force` (it keeps {_kept_here(here)} here)"]
    back = []
    commits = here.commits or here.detached
    if dirty and commits:
        back.append('`git add -A`, `git commit -m "work from the Manager"`')
    elif dirty and here.uncommitted:
        back.append("`git add -A`")
    if commits:
        back.append("`git merge` the backup ref it prints")
    if here.uncommitted:
        back.append("`git stash pop`")
    return f"to keep both, run {', then '.join([*steps, *back])}, then {before_push}`ocm push`"


def push_refused(
    repo: str,
    branch: str | None,
    *,
    manager: Work,
    here: Work,
    tui: bool,
    tui_since: float | None = None,
    dirty: bool = False,
    rewritten: bool = False,
    manager_on: str | None = None,
) -> ConflictError | None:
    """Why ``ocm push`` to ``repo`` stops, and what to do; None when nothing is at risk.

    ``manager``: the Manager's work the push lacks; ``here``: this checkout's work the
    Manager lacks (what a pull would refuse over); ``tui``: a TUI is attached on the Manager;
    ``dirty``: the Manager's work tree has uncommitted changes (its own or an earlier push's);
    ``rewritten``: the Manager's commits are this checkout's own, rewritten here since
    (:func:`rewritten_here`): keeping both would bring the old ones back; ``manager_on``:
    the Manager's branch, when it is not ``branch`` (a pull switches this checkout to it).
    """
    if not manager and not tui:
        return None
    if rewritten and manager.commits and not manager.uncommitted:
        tui_part = f", and {_tui(repo, tui_since)}" if tui else ""
        return ConflictError(
            f"the Manager's copy of {repo} has {branch or 'HEAD'} where this checkout's last"
            f" transfer left it, and this checkout has rewritten those commits since (an"
            f" amend, a rebase or a reset){tui_part}",
            f"run `ocm push --force` to send the rewritten ones (the Manager keeps its old"
            f" {branch or 'HEAD'} under refs/ocm/backup/)",
            status=409,
            code=CODE,
        )
    if not manager:
        return ConflictError(
            _tui(repo, tui_since),
            "close it and run `ocm push` again, or run `ocm push --force` (the TUI stays "
            "attached; any uncommitted work on the Manager is kept there as a stash)",
            status=409,
            code=CODE,
        )
    theirs = manager.describe(branch)
    force = _force(manager, branch)
    tui_part = f", and {_tui(repo, tui_since)}" if tui else ""
    if not here:
        return ConflictError(
            f"the Manager's copy of {repo} has {theirs} that this checkout lacks{tui_part}",
            "run `ocm pull` to bring them here (this checkout has nothing the Manager "
            f"lacks), {force}",
            status=409,
            code=CODE,
        )
    return ConflictError(
        f"both sides changed: the Manager's copy of {repo} has {theirs}, and this checkout "
        f"has {here.describe(branch)}{tui_part}",
        f"{_keep_both(here, dirty, 'close the TUI and run ' if tui else '', branch, manager_on)}"
        f"; {force}",
        status=409,
        code=CODE,
    )


def pull_refused(
    repo: str,
    branch: str | None,
    *,
    here: Work,
    manager_changed: bool,
    dirty: bool = False,
    tui: bool = False,
    on: str | None = None,
) -> ConflictError | None:
    """Why ``ocm pull`` of ``repo`` stops, and what to do; None when nothing is at risk.

    ``here``: this checkout's work the Manager lacks; ``manager_changed``: the Manager has
    work this checkout lacks (so a push would be refused in turn); ``dirty``: the Manager's
    work tree has uncommitted changes; ``tui``: a TUI is attached, so the way forward's
    push must wait for it to close; ``on``: the branch this checkout is on (a push sends
    that one, so commits on the Manager's ``branch`` need a switch to it first).
    """
    if not here:
        return None
    ours = here.describe(branch)
    before_push = "close the TUI and run " if tui else ""
    if not manager_changed:
        if here.commits and branch and on != branch:
            before_push = f"run `git switch {branch}`, then {before_push}"
        return ConflictError(
            f"this checkout has {ours} that the Manager's copy of {repo} lacks, which the "
            "pull would overwrite",
            f"{before_push or 'run '}`ocm push` to send them (the Manager has nothing"
            " newer), or run `ocm pull --force` to take the Manager's state anyway (it keeps "
            f"{_kept_here(here)} here)",
            status=409,
            code=CODE,
        )
    return ConflictError(
        f"both sides changed: this checkout has {ours}, and the Manager's copy of {repo} "
        "has work this checkout lacks",
        _keep_both(here, dirty, before_push),
        status=409,
        code=CODE,
    )
