"""``ocm push`` and ``ocm pull`` (SPEC §6): this checkout up to its Manager repo and back.

Both find the Manager repo by the checkout's ``origin`` (as bare ``ocm`` does), look at the
other side first (``/head``: what would be lost, and what it already has) so a refusal
costs no transfer, then send one git pack of what the other side lacks (:mod:`ocm.mirror.wire`).
The receiving side is :mod:`ocm.mirror` in both directions: on the Manager for a push, here
for a pull.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocm import refusals, resolve, root_commits
from ocm import state as state_mod
from ocm.background import Task
from ocm.commands.common import connect, last_repo_state, note, remember
from ocm.errors import ConflictError, ManagerError, OcmError, UsageError
from ocm.mirror import gitcmd, history, pack, wire
from ocm.mirror.errors import (
    Blocked,
    Busy,
    ChangedMeanwhile,
    GitBusy,
    IncompletePack,
    MirrorError,
    NameClash,
    NameNotTaken,
    NoSpace,
    NotARepo,
    OtherKind,
    Refused,
    TooLarge,
    Unfinished,
    Unreadable,
    Unwritable,
)
from ocm.mirror.pack import CHUNK, Limits
from ocm.mirror.progress import Progress, human
from ocm.mirror.receive import (
    Received,
    clean_leftovers,
    look,
    receive,
    refuse_unfinished,
    repo_lock,
)
from ocm.mirror.select import STAGING_NAME, Selection, whole_repo
from ocm.mirror.send import Outgoing, prepare
from ocm.mirror.state import (
    RepoState,
    at_risk,
    current_branch,
    drop_pending,
    note_pending,
    read_marker,
    read_pending,
    repo_state,
    write_marker,
)
from ocm.origin import without_credentials
from ocm.printable import printable
from ocm.prompt import ask
from ocm.repo_names import MAX_NAME, name_problem

if TYPE_CHECKING:
    from ocm.api import ManagerClient, Workspace
    from ocm.transport import Response

MIRROR_PATH = "/api/internal/repo-mirror"
TRANSFER_TIMEOUT = 900.0
# A pull writes what a Manager sends into this checkout: these bound it (a hostile or broken
# Manager must not fill the disk). Objects in the pack, and bytes of the files it writes.
PULL_MAX_OBJECTS_ENV = "OCM_PULL_MAX_OBJECTS"
PULL_MAX_BYTES_ENV = "OCM_PULL_MAX_BYTES"
FORCE_TODO = (
    "re-run with --force to overwrite it (nothing is destroyed: changes are "
    "stashed and old tips kept under refs/ocm/backup/)"
)


def pull_limits() -> Limits:
    """The limits a pull applies here (env overrides the defaults)."""
    defaults = Limits()

    def number(name: str, default: int) -> int:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise OcmError(f"{name}={raw!r} is not a count", f"set {name} to a count") from None
        return value

    return Limits(
        max_bytes=number(PULL_MAX_BYTES_ENV, defaults.max_bytes),
        max_objects=number(PULL_MAX_OBJECTS_ENV, defaults.max_objects),
    )


def _short(oid: str | None) -> str:
    return oid[:12] if oid else "(none)"


BUSY_TODO = "wait for it to finish, then run the command again"
THIS_CHECKOUT = "This checkout"  # the receiving side of a pull, in messages
# The advice for a 409 by its code (None: the Manager's message says what to do).
CONFLICT_TODOS: dict[str, str | None] = {
    "busy": BUSY_TODO,
    Unfinished.code: None,
    GitBusy.code: None,
    ChangedMeanwhile.code: None,
    Blocked.code: None,
    NameClash.code: None,
    NameNotTaken.code: None,
    Unreadable.code: None,
    Unwritable.code: None,
    OtherKind.code: "push this checkout to a Manager repo of its kind: `ocm push --create "
    "--name <another name>` makes one",
    "repo_exists": "name the new one with `ocm push --create --name <another name>`, or, if "
    "that repo is this project, give this checkout its origin (`ocm list --json` shows it) "
    "and run `ocm push`",
    # A folder with no repo: nothing a laptop can push to, and not ours to delete.
    "folder_exists": "name the new one with `ocm push --create --name <another name>`, or "
    "ask whoever runs the Manager to move that folder away (or register it again with "
    "`ocm-manager repo add`)",
    # The Manager's copy was deleted or moved behind its back: --force cannot help.
    "repo_missing": "put the Manager's copy back there, or forget that repo on the Manager "
    "(`ocm-manager repo remove` and its name) and run `ocm push --create`",
    # Its .git is damaged (a garbage HEAD, say): a matter for whoever runs the Manager.
    "repo_broken": "repair it on the Manager (`git fsck` in that folder shows what git finds "
    "wrong), or move that folder away, forget the repo (`ocm-manager repo remove` and its "
    "name) and run `ocm push --create`",
}


def _error(exc: MirrorError) -> OcmError:
    if isinstance(exc, Refused):
        return ConflictError(exc.what, exc.todo or FORCE_TODO, status=409, code=exc.code)
    if isinstance(exc, Busy):
        return ConflictError(exc.message, BUSY_TODO, status=409, code=exc.code)
    if isinstance(exc, OtherKind):  # a pull: a checkout of the Manager's kind can take it
        return OcmError(
            exc.what,
            f"pull into a checkout of the Manager's kind: in a new folder, `git init "
            f"--object-format={exc.theirs}`, give it this checkout's origin and run `ocm pull`",
        )
    return OcmError(exc.what.rstrip("."), exc.todo or "fix that and run the command again")


def _retitled(exc: ConflictError) -> ConflictError:
    """A 409 from the Manager with the advice that fits its code."""
    todo = CONFLICT_TODOS.get(exc.code or "", exc.todo)
    return ConflictError(exc.what.rstrip("."), todo, status=exc.status, code=exc.code)


def _checkout() -> tuple[Path, resolve.Checkout]:
    cwd = resolve.current_folder()
    checkout = resolve.local_checkout(cwd)
    try:
        if checkout is None:
            raise NotARepo(f"{cwd} is not inside a git repository")
        return whole_repo(checkout.root), checkout
    except MirrorError as exc:
        todo = exc.todo or "run it inside the checkout you want to mirror"
        raise OcmError(exc.what, todo) from None


def _match(
    client: ManagerClient, login: Any, checkout: resolve.Checkout, marker: dict[str, Any]
) -> Workspace | None:
    """By origin, else by root commit (SPEC §3); among several, the last used one; none
    matching, the checkout's own copy whose origin is no server's (:func:`resolve.own_copy`;
    its ``marker`` names the repo of its last push or pull)."""
    last = last_repo_state(state_mod.load(), login).last_repo_id
    workspaces = client.workspaces(root_commits=not checkout.origin)
    found = resolve.mirror_target(checkout, workspaces, last)
    if found is not None:
        return found
    last_with = {ws.repo_id for ws in workspaces if _last_with(marker, login, ws.repo_id)}

    def its_history(ws: Workspace) -> bool:
        roots = ws.root_commits
        if not roots:  # not asked for a checkout with origin: asked now, for this one
            roots = next(
                (it.root_commits for it in client.workspaces() if it.repo_id == ws.repo_id), ()
            )
        return root_commits.holds_history_of(checkout.root, roots)

    own = resolve.own_copy(checkout, workspaces, last_with, its_history)
    if own is not None:
        note(
            f"no Manager repo matches {checkout.describe()}; using {own.name} "
            f"(#{own.repo_id}), this checkout's own copy, whose origin is no server's"
        )
    return own


# The Manager's answer when a repo id names no repo (any more).
GONE = "unknown_repo"


def _last_with(marker: dict[str, Any], login: Any, repo_id: int) -> bool:
    """Whether the checkout's last push or pull (its marker) was with repo ``repo_id``."""
    target = f"{login.url} #{repo_id}"
    return marker.get("to") == target or str(marker.get("from", "")).startswith(f"{target} ")


def _last_target(
    login: Any, checkout: resolve.Checkout, marker: dict[str, Any]
) -> Workspace | None:
    """The repo :func:`_match` would pick, known without the repo list (one round trip):
    the one this checkout last pushed to or pulled from, when nothing since can have
    changed the pick. The checkout's origin is still the one it had then, and that repo is
    still the last one used with this Manager (``ocm use`` may have chosen another among
    several). None: ask the list. A repo gone since answers :data:`GONE`, and the caller
    then asks the list after all."""
    state = last_repo_state(state_mod.load(), login)
    repo_id = state.last_repo_id
    if not checkout.origin or marker.get("origin") != checkout.origin or repo_id is None:
        return None
    if not _last_with(marker, login, repo_id):
        return None
    from ocm.api import Workspace  # noqa: PLC0415 - loaded with the HTTP client by connect()

    return Workspace(
        repo_id=repo_id,
        name=state.last_repo_name or f"#{repo_id}",
        branch=state.last_repo_branch or "",
        status="ready",
        directory=state.last_repo_dir or "",
        origin_url=checkout.origin,
    )


def _gone(exc: ManagerError, known: Workspace | None) -> bool:
    """Whether ``exc`` says the repo :func:`_last_target` named is no longer there."""
    return known is not None and exc.code == GONE


def _unmatched(
    client: ManagerClient, checkout: resolve.Checkout, todo: str, unborn_todo: str
) -> OcmError:
    """No Manager repo matches ``checkout``: ``todo`` says what to do, ``unborn_todo`` when
    the checkout has nothing to be matched by (no origin, no commit)."""
    if not checkout.origin and not checkout.roots:
        return OcmError(
            f"{checkout.root} has no commit and no origin remote, so no Manager repo matches it",
            unborn_todo,
        )
    where = checkout.describe()
    if not checkout.origin:
        return OcmError(f"no Manager repo matches {where} (no origin remote)", todo)
    # Asked again on this one path rather than carried from the match on every other.
    another = resolve.by_another_url(checkout, client.workspaces(root_commits=False))
    if another is None:
        return OcmError(f"no Manager repo matches {where}", todo)
    return OcmError(
        f"no Manager repo matches {where}, though {another.said}",
        f"to push and pull with it from here, make its URL this checkout's origin: "
        f"`{another.command}`",
    )


def _counts(changed: int, deleted: int) -> str:
    return f"{changed} file{'' if changed == 1 else 's'} changed, {deleted} deleted"


def _say(line: str) -> None:
    print(printable(line), flush=True)


def _saved_lines(where: str, saved: list[str]) -> None:
    for line in saved:
        _say(f"  kept {where}: {line}")


# ------------------------------------------------------------------------------ push


def repo_name(root: Path) -> str:
    """The new Manager repo's name: the folder's, with what the Manager refuses made '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-.")[:MAX_NAME] or "repo"
    # Digits alone would read as a repo id, so the Manager refuses them as a name.
    return f"repo-{name}"[:MAX_NAME] if name.isdigit() else name


def _confirm_create(name: str, yes: bool, alike: resolve.AnotherUrl | None) -> None:
    """``alike``: repos the Manager has of this checkout's repository by another URL. Most
    likely this very project, so what --create makes is a second copy: said first."""
    instead = f"make its URL this checkout's origin: `{alike.command}`" if alike else ""
    if yes:
        if alike:
            note(
                f"{alike.said}; making {name!r} all the same, a second copy (to push to it, "
                f"{instead})"
            )
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        if alike:
            raise OcmError(
                f"no Manager repo matches this checkout, though {alike.said}",
                f"to push to it, {instead}; or, to create {name!r} all the same, a second "
                "copy, run `ocm push --create --yes`",
            )
        raise OcmError(
            f"no Manager repo matches this checkout, and creating {name!r} needs a confirmation",
            "run `ocm push --create --yes` to create it",
        )
    question = f"Create the Manager repo {name!r} from this checkout? [y/N] "
    if alike:
        note(f"{alike.said}; to push to it instead, {instead}")
        question = f"Create {name!r} all the same, a second copy? [y/N] "
    answer = ask(question).strip().lower()
    if answer not in {"y", "yes"}:
        raise OcmError("nothing pushed", "answer y to create the repo, or pass --yes")


def _since(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _push_refusal(
    root: Path, outgoing: Outgoing, head: dict[str, Any], label: str
) -> ConflictError | None:
    """What ``/head`` says the push would overwrite, and the way forward (the Manager
    checks again at the swap)."""
    kind = _other_kind(
        head, f"The Manager's copy of {label}", "this checkout", outgoing.state.snapshot
    )
    if kind:
        raise OcmError(kind.what, CONFLICT_TODOS[kind.code])
    state = outgoing.state
    return refusals.push_refused(
        label,
        state.branch,
        manager=refusals.manager_work(root, head, state.head),
        here=refusals.local_work(root, state, state.branch, head, head.get("branchHead")),
        tui=bool(head.get("inUse")),
        tui_since=_since(head.get("inUseSince")),
        dirty=bool(head.get("dirty")),
        rewritten=refusals.rewritten_here(root, head, state.head),
        manager_on=_elsewhere(head, state.branch),
    )


def _elsewhere(head: dict[str, Any], ours: str | None) -> str | None:
    """The Manager's branch, when its HEAD is on another than this checkout's ("a detached
    HEAD" when it is on none and this checkout is on a branch: a pull detaches it too)."""
    theirs = head.get("branch")
    if not theirs and ours and gitcmd.is_oid(head.get("head")):
        return "a detached HEAD"
    return theirs if isinstance(theirs, str) and theirs and theirs != ours else None


def _pull_refusal(
    root: Path, head: dict[str, Any], label: str, state: RepoState | None = None
) -> ConflictError | None:
    """What the pull would overwrite here, and the way forward."""
    state, branch = state or repo_state(root), head.get("branch")
    kind = _other_kind(head, THIS_CHECKOUT, "the Manager", state.snapshot, receiving=True)
    if kind:
        raise _error(kind)
    return refusals.pull_refused(
        label,
        branch,
        here=refusals.local_work(root, state, branch, head, head.get("head")),
        manager_changed=refusals.manager_changed(root, head, state.head),
        dirty=bool(head.get("dirty")),
        tui=bool(head.get("inUse")),
        on=state.branch,
    )


def _other_kind(
    head: dict[str, Any], side: str, sender: str, ours: str, *, receiving: bool = False
) -> OtherKind | None:
    """The refusal when ``/head`` shows a Manager's copy of the other hash function than
    this checkout's ``ours`` (an object id here), before a pack is sent: ``side`` is the
    receiving side, this checkout when ``receiving``."""
    seen = head.get("head")
    if not gitcmd.is_oid(seen):
        return None
    here, there = gitcmd.oid_format(ours), gitcmd.oid_format(str(seen))
    if here == there:
        return None
    return (
        OtherKind(side, here, sender, there) if receiving else OtherKind(side, there, sender, here)
    )


def _limit(limits: object, key: str) -> int:
    """One of the Manager's limits, as ``/head`` or the marker recording it gives it; 0
    when there is none to go by (absent, or not a positive number: a marker edited by hand
    is no reason to fail, the Manager checks again anyway)."""
    value = limits.get(key) if isinstance(limits, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _check_limits(outgoing: Outgoing, objects: int, limits: object) -> None:
    """Refuse before sending what the Manager would refuse after receiving it all."""
    total = outgoing.total or 0
    max_objects = _limit(limits, "maxArchiveMembers")
    max_bytes = _limit(limits, "maxArchiveBytes") or 1 << 62
    if max_objects and objects > max_objects:
        raise OcmError(
            f"this push has {objects} git objects to send, more than the Manager "
            f"accepts ({max_objects})",
            "raise --max-archive-members on the Manager, or ignore more files in .gitignore",
        )
    if total > max_bytes:
        raise OcmError(
            f"this checkout has {total} bytes to send, more than the Manager accepts ({max_bytes})",
            "raise --max-archive-bytes on the Manager, or ignore more files in .gitignore",
        )


def _head_for_push(
    client: ManagerClient, root: Path, repo_id: int, existing: bool
) -> dict[str, Any]:
    """``/head`` for a push: of this checkout's branch, with its tip, when the repo exists
    (on a detached HEAD, its commit: whether the Manager's HEAD holds it)."""
    branch = current_branch(root) if existing else None
    tip = history.branch_tip(root, branch) if branch else None
    if existing and not branch:
        tip = history.head_commit(root)
    return _head(client, repo_id, branch, tip)


def _upload_body(stream: pack.PackStream, progress: Progress) -> Iterator[bytes]:
    for chunk in stream:
        progress.add(len(chunk))
        yield chunk
    progress.finish(then="the Manager is checking the pack and switching the work tree")


def _head(
    client: ManagerClient, repo_id: int, branch: str | None = None, ours: str | None = None
) -> dict[str, Any]:
    """``/head`` of a repo (0: the empty repo a ``--create`` starts from), after checking
    that the Manager speaks this ocm's wire format. ``ours``: this checkout's commit, which
    the Manager says whether its history holds (``mergedTip``)."""
    params = {key: value for key, value in (("branch", branch), ("ours", ours)) if value}
    try:
        head = client.get_json(f"{MIRROR_PATH}/{repo_id}/head", params=params or None)
    except ConflictError as exc:
        raise _retitled(exc) from None
    except ManagerError as exc:
        if repo_id == 0 and exc.status == 404:  # a Manager from before format 2
            head = {}
        else:
            raise
    wrong = wire.client_check(head.get(wire.VERSION_FIELD), client.url)
    if wrong:
        raise OcmError(*wrong)
    return dict(head)


def _wire_error(exc: ManagerError, url: str) -> OcmError:
    """A refusal from the Manager as the one line the user sees."""
    if isinstance(exc, ConflictError):
        return _retitled(exc)
    if exc.code == "mirror_version":
        return OcmError(exc.what.split(": ", 1)[-1], "upgrade ocm so that both speak the same")
    return exc


def _broke_off(exc: ManagerError, label: str, sent: int, again: str) -> OcmError:
    """The connection failed once the pack was on its way: the Manager was reached, and it
    switches its copy only once the whole pack is in and checked, or not at all."""
    reason = exc.what.rpartition(" (")[2].rstrip(")")  # the transport's few words
    return OcmError(
        f"the push to {label} broke off after {human(sent)} ({reason}); the Manager's copy "
        "has all of it or none of it",
        f"run `{again}` again",
    )


def _shallow(root: Path) -> bool:
    """Whether ``root`` is a shallow clone (``git clone --depth``): git's list of the commits
    whose parents it cut off."""
    return (root / ".git" / "shallow").exists()


def _shallow_error(root: Path) -> OcmError:
    """A pack even assuming nothing lacked objects: a shallow clone's commits name parents
    it never fetched, which a Manager repo that lacks them cannot take."""
    return OcmError(
        f"{root} is a shallow clone, and the Manager's copy lacks the history it cut off",
        "fetch that history first (`git fetch --unshallow`), then run the command again",
    )


def _send(
    client: ManagerClient,
    repo_id: int,
    params: dict[str, str],
    outgoing: Outgoing,
    head: dict[str, Any],
    label: str,
    ask: Callable[[], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], int]:
    """Upload one pack of what the Manager lacks. When it lacks what the pack assumed (its
    history was rewritten meanwhile), once more with the tips ``ask`` gets from /head, if
    given, then assuming nothing. (answer, bytes)"""
    attempts: list[Callable[[], dict[str, Any]]] = [lambda: head]
    if ask:
        attempts.append(ask)
    if head.get("tips") or ask:
        attempts.append(lambda: {**head, "tips": []})
    sent = 0  # every attempt's bytes: the closing line says what went over the wire
    for n, attempt in enumerate(attempts):
        head = attempt()
        try:  # git may refuse before a byte is sent (a partial clone's missing objects)
            stream = outgoing.open_pack([str(oid) for oid in head.get("tips") or []])
        except MirrorError as exc:
            raise _error(exc) from None
        with stream:
            _check_limits(outgoing, stream.objects, head.get("limits"))
            with Progress(f"sending to {label}") as progress:
                try:
                    response = client.request(
                        "POST",
                        f"{MIRROR_PATH}/{repo_id}/up",
                        params={
                            **params,
                            wire.VERSION_PARAM: str(wire.VERSION),
                            "snapshot": outgoing.snapshot.commit,
                            "headBranch": outgoing.snapshot.branch or "",
                        },
                        data=_upload_body(stream, progress),
                        headers={"Content-Type": wire.PACK_TYPE},
                        read_timeout=TRANSFER_TIMEOUT,
                        conflict_todo=FORCE_TODO,
                    )
                except MirrorError as exc:
                    raise _error(exc) from None
                except ManagerError as exc:
                    if exc.code == IncompletePack.code and n + 1 < len(attempts):
                        sent += stream.sent
                        continue
                    if exc.code == IncompletePack.code and _shallow(outgoing.root):
                        raise _shallow_error(outgoing.root) from None
                    if exc.status is None and stream.sent:
                        # A repo being created is made again: a Manager that stopped
                        # meanwhile forgets it at its next start.
                        again = "ocm push --create" if params.get("create") else "ocm push"
                        raise _broke_off(exc, label, stream.sent, again) from None
                    raise _wire_error(exc, client.url) from None
            sent += stream.sent
        try:
            return dict(response.json()), sent
        except ValueError:
            raise ManagerError(
                "the Manager accepted the push but answered no JSON", "check the Manager's log"
            ) from None
        finally:
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _look_to_push(root: Path) -> Outgoing:
    """The snapshot a push sends, taken under this checkout's lock, which a pull holds
    while it switches the work tree: a push must not send (nor call uncommitted work) a
    tree half old, half new. A pull killed mid-switch is undone first, as the next pull
    would; what that kept aside is said at once, whatever becomes of the push."""
    with repo_lock(root, "another ocm transfer"):
        _saved_lines("here", clean_leftovers(root / ".git" / STAGING_NAME).saved)
        return prepare(root)


def push(*, force: bool, create: bool, yes: bool, name: str | None) -> int:
    """``name``: the repo ``--create`` makes, when it makes one (default: the folder's)."""
    problem = name_problem(name) if create and name is not None else None
    if problem:  # before anything is read or sent: the Manager would refuse it after the upload
        raise UsageError(f"--name: {problem}")
    root, checkout = _checkout()
    new_name = (repo_name(root) if name is None else name) if create else None
    # This checkout's snapshot needs nothing from the Manager: git builds it while the
    # repo list and /head make their round trips, which then cost no wall time.
    with Task(_look_to_push, root) as prepared:
        client, login = connect()
        client.open_early()  # the handshake, too, while git works
        with client:
            marker = read_marker(root)
            known = _last_target(login, checkout, marker)
            target = known or _match(client, login, checkout, marker)
            try:
                _push_to(
                    client, login, root, checkout, target, marker, prepared, force, new_name, yes
                )
            except ManagerError as exc:
                if not _gone(exc, known):
                    raise
                target = _match(client, login, checkout, marker)
                _push_to(
                    client, login, root, checkout, target, marker, prepared, force, new_name, yes
                )
    if create and target is not None:
        # --create (and --name) make a repo only for a checkout none matches: said, since
        # the push went to one the person may not have meant.
        note(
            f"{root} already was the Manager's repo {target.name} (#{target.repo_id}): pushed"
            " there; --create makes a repo only for a checkout no repo matches"
        )
    return 0


def _settle_lost_push(
    client: ManagerClient, root: Path, login: Any, ws: Workspace, marker: dict[str, Any]
) -> dict[str, Any]:
    """``marker``, or the record of this checkout's last push to ``ws`` (or the one that
    created it) if its answer never came and the Manager's copy is that push (it received
    it last): recorded now as the answer would have, so the next push and pull take that
    copy for this checkout's own. One more round trip, only after a push that failed
    without an answer."""
    pending = read_pending(root)
    created = pending.get("to") == f"{login.url} #0" and pending.get("name") == ws.name
    if not pending or not (created or pending.get("to") == f"{login.url} #{ws.repo_id}"):
        return marker
    received = _head(client, ws.repo_id).get("received")
    if received and received == pending.get("commit"):
        pending.pop("name", None)
        write_marker(root, {**pending, "to": f"{login.url} #{ws.repo_id}"})
        pack.set_snapshot_ref(root, received)
        marker = read_marker(root)
    drop_pending(root)
    return marker


def _push_to(
    client: ManagerClient,
    login: Any,
    root: Path,
    checkout: resolve.Checkout,
    ws: Workspace | None,
    marker: dict[str, Any],
    prepared: Task[Outgoing],
    force: bool,
    new_name: str | None,
    yes: bool,
) -> None:
    """Push to ``ws`` (None: create the repo ``new_name``, if there is one to create)."""
    if ws is None and new_name is None:
        raise _unmatched(
            client,
            checkout,
            f"run `ocm push --create` to create {repo_name(root)!r} from it, or "
            "`ocm list` to see the repos",
            "commit once, then run `ocm push --create`",
        )
    repo_id = ws.repo_id if ws else 0
    if ws is not None:
        marker = _settle_lost_push(client, root, login, ws, marker)
    # Creating from a checkout with an origin: the list is asked again on this rare path for
    # the look-alikes a second copy would duplicate, rather than carried from every match.
    alike = None
    if ws is None and checkout.origin:
        alike = resolve.by_another_url(checkout, client.workspaces(root_commits=False))
    # The everyday loop skips /head: when this checkout's last transfer was with
    # this repo, the pack assumes what that left there, and the Manager checks
    # everything at the swap anyway (a refusal then asks /head to say why).
    assumed = _assumed_head(root, login, ws, marker) if ws else None
    head = assumed or _head_for_push(client, root, repo_id, ws is not None)
    try:
        # Shown only when git takes a while (large files to hash).
        with Progress(f"looking at {root.name}", counting=False):
            outgoing = prepared.result()
    except MirrorError as exc:
        raise _error(exc) from None
    _push(
        client,
        login,
        root,
        checkout.origin,
        ws,
        head,
        outgoing,
        force=force,
        yes=yes,
        asked=assumed is None,
        new_name=new_name,
        alike=alike,
    )


def _last_limits(marker: dict[str, Any], login: Any, ws: Workspace) -> dict[str, Any] | None:
    """The Manager's limits as the marker recorded them, when the checkout's last transfer
    was with ``ws`` (else None: /head must be asked)."""
    if not _last_with(marker, login, ws.repo_id):
        return None
    limits = marker.get("limits")
    return limits if isinstance(limits, dict) else None


def _assumed_head(
    root: Path, login: Any, ws: Workspace, marker: dict[str, Any]
) -> dict[str, Any] | None:
    """What ``/head`` of ``ws`` would tell a push, as far as this checkout's last transfer
    (with ``ws``) left it known: the snapshot both sides then had, and the Manager's limits."""
    limits = _last_limits(marker, login, ws)
    tips = pack.present(root, [str(marker.get("commit"))]) if limits is not None else []
    return {"tips": tips, "limits": limits} if tips else None


def _push(
    client: ManagerClient,
    login: Any,
    root: Path,
    origin: str | None,
    ws: Workspace | None,
    head: dict[str, Any],
    outgoing: Outgoing,
    *,
    force: bool,
    yes: bool,
    asked: bool,
    new_name: str | None,
    alike: resolve.AnotherUrl | None,
) -> None:
    """The push once both sides have been looked at: refuse, confirm, send, record.
    ``asked``: ``head`` is the Manager's answer, not what this checkout assumes of it;
    ``new_name``: the repo to create when ``ws`` is None; ``alike``: the Manager's repos
    of this checkout's repository by another URL, then."""
    repo_id = ws.repo_id if ws else 0
    branch = outgoing.state.branch
    skipped = outgoing.selection.skipped
    _note_left_out("not sent", len(skipped), skipped[: wire.NOT_SENT_SHOWN])
    params: dict[str, str] = {"from": f"{os.uname().nodename}:{root}"}
    # The Manager keeps no password of the origin's (a proxy in front may log a query).
    # A repo that has no origin takes this one: the next checkout with it finds the repo.
    if origin:
        params["originUrl"] = without_credentials(origin)
    if ws is None:
        assert new_name is not None
        label = new_name
        _confirm_create(label, yes, alike)
        params.update(create="1", name=label, branch=branch or "main")
    else:
        label = ws.name
        refusal = _push_refusal(root, outgoing, head, label) if asked else None
        if refusal and not force:
            raise refusal
    if force:
        params["force"] = "1"
    base = read_marker(root).get("snapshot")
    if base:
        params["base"] = base
    ours = outgoing.state.head
    # What the Manager will have is known here once it answers: the next push may overwrite
    # it, and the next transfer either way may assume its objects.
    record = {
        "snapshot": outgoing.state.snapshot,
        "bytes": outgoing.total,  # the next push is sized by what it changes
        "head": outgoing.state.head,
        "branch": branch,
        "commit": outgoing.snapshot.commit,
        "limits": head.get("limits"),
        "to": f"{login.url} #{repo_id}",
        "origin": origin,  # the next transfer may then skip the repo list
    }
    # A repo being created has no id yet: its note names it, as the next push finds it.
    note_pending(root, record if ws else {**record, "name": label})
    try:
        ask = None if asked else lambda: _head(client, repo_id, branch, ours)
        result, sent = _send(client, repo_id, params, outgoing, head, label, ask)
    except ConflictError as exc:
        drop_pending(root)  # answered: nothing was switched
        if exc.code != refusals.CODE or ws is None:
            raise
        # Refused at the swap: something changed there since /head; say what, afresh.
        fresh = _head(client, repo_id, branch, ours)
        raise (_push_refusal(root, outgoing, fresh, label) or exc) from None
    except ManagerError as exc:
        if exc.code == NoSpace.code:  # answered: what it had switched was undone
            drop_pending(root)
        raise
    # The push is done; bookkeeping failures must not report it as failed.
    with contextlib.suppress(Exception):
        write_marker(root, {**record, "to": f"{login.url} #{result.get('repoId')}"})
        drop_pending(root)
        pack.set_snapshot_ref(root, outgoing.snapshot.commit)
        outgoing.delivered()
    with contextlib.suppress(OcmError, OSError, KeyError, ValueError):
        # The answer describes the repo as the list would: no second round trip for it.
        from ocm.api import Workspace  # noqa: PLC0415 - loaded with the HTTP client by connect()

        remember(state_mod.load(), login, Workspace.from_json({**result, "originUrl": origin}))
    what = "created and pushed" if repo_id == 0 else "pushed"
    # An agent may have switched the Manager's copy to a branch of its own: said, as a pull
    # says its switch, or it finds itself on another branch unawares.
    was = result.get("wasBranch", result.get("branch"))
    switched = (
        f" (the Manager's copy switched from {was or 'a detached HEAD'})"
        if repo_id and was != result.get("branch")
        else ""
    )
    _say(
        f"ocm: {what} {result.get('name', label)} (#{result.get('repoId')}): "
        f"{result.get('branch') or 'detached HEAD'} at {_short(result.get('head'))}{switched}, "
        f"{_counts(int(result.get('changed', 0)), int(result.get('deleted', 0)))}, "
        f"{human(sent)} sent"
    )
    saved = list(result.get("saved") or [])
    _saved_lines("on the Manager", saved)
    if saved:
        _say("  (run those in the Manager's copy: in the TUI, a command after `!` runs there)")


# ------------------------------------------------------------------------------ pull


class _ResponseReader(io.RawIOBase):
    """A file object over a streamed response, so extraction reads as bytes arrive."""

    def __init__(self, response: Any, progress: Progress) -> None:
        self._chunks = response.iter_content(CHUNK)
        self._buffer = b""
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self._buffer:
            self._buffer = next(self._chunks, b"")
            self._progress.add(len(self._buffer))
            if not self._buffer:  # all in: git checks it, then the work tree is switched
                self._progress.finish(then="checking the pack and switching the work tree")
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


def _note_left_out(what: str, count: int, names: list[str]) -> None:
    """Say which paths the snapshot left out, by the first few names."""
    if count:
        more = count - len(names)
        note(
            f"{what} (nested repositories, special files): "
            f"{', '.join(names)}{f' and {more} more' if more > 0 else ''}"
        )


def _busy(response: Any) -> int:
    """The Manager's count of the repo's sessions running a turn (0 if it did not say)."""
    raw = response.headers.get(wire.BUSY_HEADER, "")
    return int(raw) if raw.isdigit() else 0


def _branch(response: Response) -> str | None:
    """The branch the Manager's snapshot is on (None: a detached HEAD), quoted by a Manager
    that knows how, as it is by one from before."""
    quoted = response.headers.get(wire.QUOTED_BRANCH_HEADER)
    if quoted is not None:
        return wire.unquote_branch(quoted) or None
    return response.headers.get(wire.BRANCH_HEADER) or None


def _ask_for_pack(client: ManagerClient, root: Path, ws: Workspace, have: list[str]) -> Response:
    """The Manager's answer to ``/down``: its headers read, the pack still to come."""
    try:
        return client.request(
            "GET",
            f"{MIRROR_PATH}/{ws.repo_id}/down",
            params={
                wire.VERSION_PARAM: str(wire.VERSION),
                wire.QUOTED_BRANCH_PARAM: "1",
                "have": have,
                # For the console's "last pull": which laptop and checkout.
                "from": f"{os.uname().nodename}:{root}",
            },
            read_timeout=TRANSFER_TIMEOUT,
        )
    except ManagerError as exc:
        raise _wire_error(exc, client.url) from None


def _download(
    client: ManagerClient,
    root: Path,
    ws: Workspace,
    force: bool,
    sender: str,
    remember: dict[str, Any],
    looked: Task[tuple[Selection, RepoState]],
    tips: list[str],
    asked: Response | None = None,
) -> tuple[Received, int, int]:
    """Ask for a pack of what this checkout lacks, assuming it has ``tips`` (unless
    ``asked`` already did: the response), and receive it, with the look at this checkout
    ``looked`` (taken under the pull's lock); when the tips turn out incomplete, once more
    assuming nothing. (result, bytes received, sessions the Manager said were at work)"""
    attempts = [tips, []] if tips else [[]]
    for n, assumed in enumerate(attempts):
        response = asked if asked and n == 0 else _ask_for_pack(client, root, ws, assumed)
        try:
            commit = response.headers.get(wire.SNAPSHOT_HEADER, "")
            with Progress(f"receiving {ws.name}") as progress:
                result = receive(
                    root,
                    io.BufferedReader(_ResponseReader(response, progress), CHUNK),
                    snapshot_commit=commit,
                    branch=_branch(response),
                    staging_dir=root / ".git" / STAGING_NAME,
                    limits=pull_limits(),
                    force=force,
                    side=THIS_CHECKOUT,
                    lacking_label="the Manager",
                    sender=sender,
                    remember=remember,
                    looked=looked,
                )
            _note_left_out(
                "not brought from the Manager's copy",
                *wire.unquote_names(response.headers.get(wire.NOT_SENT_HEADER, "")),
            )
            return result, progress.total, _busy(response)
        except IncompletePack:
            if n + 1 == len(attempts):
                raise
        finally:
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _pull_from(
    client: ManagerClient,
    login: Any,
    root: Path,
    checkout: resolve.Checkout,
    ws: Workspace | None,
    looked: Task[tuple[Selection, RepoState]],
    tips: Task[list[str]],
    marker: dict[str, Any],
    *,
    force: bool,
) -> tuple[Workspace, tuple[Received, int, int]]:
    """Pull from ``ws`` (None: no repo matches): the repo and what :func:`_download` gives.
    ``looked``: this checkout's state, and ``tips``: what a pack may assume here, both of
    which git is still working out."""
    if ws is None:
        raise _unmatched(
            client,
            checkout,
            "run `ocm list` to see the repos, or `ocm push --create` first",
            "add the origin remote of a Manager repo (`ocm list --json` shows them), or "
            "commit once and run `ocm push --create`",
        )
    marker = _settle_lost_push(client, root, login, ws, marker)
    # Like push, the everyday pull skips /head when nothing here is at risk: the
    # receive checks everything again under the lock, and a refusal asks /head. After a
    # transfer with this repo it asks for the pack at once, while git looks at this
    # checkout; when that look finds work at risk, the pack is left unread and /head asked.
    limits = _last_limits(marker, login, ws)
    early = _ask_for_pack(client, root, ws, tips.result()) if limits is not None else None
    try:
        current, state = looked.result()
        refuse_unfinished(root, current, THIS_CHECKOUT)
    except BaseException:
        if early:
            early.close()
        raise
    safe = limits is not None and not at_risk(state, {marker.get("snapshot")})
    if early and not safe:
        early.close()
        early = None
    assumed = {"limits": limits} if safe else None  # the pull's own tips go as "have"
    head = assumed or _head(client, ws.repo_id, ours=state.head)
    refusal = None if assumed else _pull_refusal(root, head, ws.name, state)
    if refusal and not force:
        raise refusal
    # The next transfer may then skip the repo list and /head (see _last_target).
    remember = {"limits": head.get("limits"), "origin": checkout.origin}
    try:
        return ws, _download(
            client,
            root,
            ws,
            force,
            f"{login.url} #{ws.repo_id} {ws.name}",
            remember,
            looked,
            tips.result(),
            early,
        )
    except Refused:
        # The history that arrived shows what /head could not: say it afresh.
        asked = _head(client, ws.repo_id, ours=state.head) if assumed else head
        refusal = _pull_refusal(root, asked, ws.name)
        if refusal is None:
            raise
        raise refusal from None


def pull(*, force: bool) -> int:
    root, checkout = _checkout()
    staging = root / ".git" / STAGING_NAME
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(repo_lock(root, "another ocm transfer"))
            undone = clean_leftovers(staging)  # undo a pull that was killed mid-switch
        except MirrorError as exc:
            raise _error(exc) from None
        _saved_lines("here", undone.saved)
        # As push does: git looks at this checkout while the requests make their round trips.
        looked = stack.enter_context(Task(look, root))
        tips = stack.enter_context(Task(pack.tips, root))
        client, login = connect()
        client.open_early()
        stack.enter_context(client)
        marker = read_marker(root)
        known = _last_target(login, checkout, marker)
        ws = known or _match(client, login, checkout, marker)
        try:
            try:
                ws, (result, received, busy) = _pull_from(
                    client, login, root, checkout, ws, looked, tips, marker, force=force
                )
            except ManagerError as exc:
                if not _gone(exc, known):
                    raise
                ws = _match(client, login, checkout, marker)
                ws, (result, received, busy) = _pull_from(
                    client, login, root, checkout, ws, looked, tips, marker, force=force
                )
        except TooLarge as exc:  # this checkout's own limits: say which to raise
            raise OcmError(
                exc.what,
                f"if that is expected, raise {PULL_MAX_BYTES_ENV} (bytes) or "
                f"{PULL_MAX_OBJECTS_ENV} (objects) and run `ocm pull` again",
            ) from None
        except MirrorError as exc:
            raise _error(exc) from None
        except ConflictError as exc:
            raise _retitled(exc) from None
        except OSError as exc:
            if exc.filename:  # a file of this checkout's (a switch undoes what it did)
                raise OcmError(
                    f"{exc.filename}: {exc.strerror}; this checkout is unchanged",
                    "fix that and run `ocm pull` again",
                ) from None
            raise OcmError(  # the download broke off (ocm.transport says why)
                f"the transfer from {login.url} broke off ({exc}); this checkout is unchanged",
                "run `ocm pull` again",
            ) from None
        with contextlib.suppress(OcmError, OSError):
            remember(state_mod.load(), login, ws)
        was = looked.result()[1].branch
    # HEAD follows the Manager's branch: a switch is said, or it goes unnoticed.
    switched = f" (switched from {was or 'a detached HEAD'})" if was != result.branch else ""
    _say(
        f"ocm: pulled {ws.name} (#{ws.repo_id}): {result.branch or 'detached HEAD'} at "
        f"{_short(result.head)}{switched}, {_counts(result.changed, result.deleted)}, "
        f"{human(received)} received"
    )
    _saved_lines("here", result.saved)
    if busy:
        _say(
            f"  the agent is still at work in {ws.name} ({busy} session"
            f"{'s' if busy > 1 else ''} running a turn): what it writes next comes with the"
            " next `ocm pull`"
        )
    return 0
