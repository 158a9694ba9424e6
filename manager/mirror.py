"""The mirror endpoints (SPEC §4, §6): ``head`` to look, ``up`` to receive, ``down`` to send.

The work is done by :mod:`ocm.mirror`, which the laptop uses too; this module only maps
HTTP to it: the repo from the registry, the limits from the settings, ``inUse`` from the
proxy's stream tracker, the wire format's version (:mod:`ocm.mirror.wire`), and every
MirrorError to a JSON error with its status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from manager.ask_opencode import busy_sessions
from manager.errors import ApiError
from manager.registry import (
    CLONING,
    READY,
    NameTaken,
    Registry,
    RegistryFull,
    Repo,
    get_registry,
)
from manager.repos import MAX_URL_CHARS, taken_by
from ocm.background import Task
from ocm.mirror import gitcmd, history, pack, wire
from ocm.mirror.errors import (
    NO_ROOM,
    LockHeld,
    MirrorError,
    NoSpace,
    Unreadable,
    Unwritable,
    WrongVersion,
)
from ocm.mirror.pack import Limits
from ocm.mirror.receive import receive, repack_when_due, repo_lock, settle_index, size_sent
from ocm.mirror.send import prepare
from ocm.mirror.snapshot import valid_branch
from ocm.mirror.state import read_marker, repo_state
from ocm.origin import names_a_folder, without_credentials
from ocm.repo_names import name_problem

mirror_bp = Blueprint("mirror", __name__, url_prefix="/api/internal/repo-mirror")
# A push that wrote this many files has its index refreshed after its answer, not before
# (0.6 s on 21,000 files), see ``_settle``. Fewer cost little to refresh at once, and each
# settling takes the index's lock for a moment that an agent's own git might want.
SETTLE_AFTER_FILES = 100
SETTLE_DELAY = 1.1
# In the .git of a repo a ``push --create`` is making, until that push has landed.
CREATING = "ocm-creating"
# The error code of a transfer the Manager's stop cut short (the client says to run it again).
STOPPING = "manager_stopping"
# How long a transfer whose git failed waits to learn whether the Manager is stopping: one
# SIGTERM to the whole process group (Ctrl-C at the Manager's terminal) ends git and starts
# the stop at the same moment.
STOP_NOTICED = 1.0
# How long the look for lost objects after a failed transfer may take (see _lost_objects).
FSCK_SECONDS = 30.0
log = logging.getLogger("manager.mirror")


def _services() -> Any:
    return current_app.extensions["ocm"]


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in {"1", "true", "yes"}


def _repo(repo_id: int) -> Repo:
    repo = get_registry().get_repo(repo_id)
    if repo is None:
        raise ApiError(404, "unknown_repo", f"There is no repo {repo_id} on this Manager.")
    if repo.status != READY:
        raise ApiError(409, "repo_not_ready", f"Repo {repo.name} is {repo.status}, not ready.")
    if not (repo.directory / ".git").is_dir():
        raise ApiError(
            409, "repo_missing", f"Repo {repo.name} has no git checkout at {repo.directory}."
        )
    if _looks_like_a_repo(repo.directory / ".git"):
        return repo
    found = gitcmd.run(repo.directory, "rev-parse", "--git-dir", check=False)
    if found.returncode != 0:  # e.g. a garbage .git/HEAD: git does not see a repo there
        said = os.fsdecode(found.stderr).strip().splitlines()
        why = said[0].removeprefix("fatal: ").rstrip(".") if said else "git does not say why"
        log.warning("repo %s at %s is broken: %s", repo.name, repo.directory, why)
        raise ApiError(
            409,
            "repo_broken",
            f"The Manager's copy of {repo.name} at {repo.directory} is not a usable git "
            f"repository (git: {why}).",
        )
    return repo


_HEAD = re.compile(rb"ref: refs/\S+\n?|[0-9a-f]{40}(?:[0-9a-f]{24})?\n?")


def _looks_like_a_repo(git_dir: Path) -> bool:
    """What git checks before it takes a folder for a repository (a valid HEAD, objects/,
    refs/), without starting git on every transfer: git is asked why only when it fails."""
    try:
        head = (git_dir / "HEAD").read_bytes()[:4096]
    except OSError:
        return False
    return bool(
        _HEAD.fullmatch(head) and (git_dir / "objects").is_dir() and (git_dir / "refs").is_dir()
    )


def _lock(repo: Repo, stack: contextlib.ExitStack) -> None:
    """Take the repo's transfer lock into ``stack``, on a repo still registered: a removal
    takes that lock too, and may have come between the look-up and now."""
    removed = ApiError(
        404, "unknown_repo", f"Repo {repo.name} was removed from this Manager meanwhile."
    )
    try:
        stack.enter_context(repo_lock(repo.directory))
    except FileNotFoundError:  # its files went with it
        raise removed from None
    if get_registry().get_repo(repo.id) is None:
        raise removed


def _api_error(exc: MirrorError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def _failed(exc: MirrorError, what: str, repo: Repo) -> ApiError:
    """The answer to a transfer that failed. What the Manager may not read or write, and
    room on its disk, are for whoever runs it to fix, not the laptop's user: say whose. A
    failure of the Manager's own (a 500: "git pack-objects failed ...: no output") while it
    stops is the stop's doing: say that; in a copy that lost objects, say that; log the
    others, since the client then says to read the log."""
    if isinstance(exc, Unreadable):
        return ApiError(
            exc.status,
            exc.code,
            f"The Manager's copy of {repo.name} at {repo.directory} has a part the Manager may"
            f" not read ({exc.detail}); whoever runs the Manager makes it readable, or has git"
            " ignore it there (.gitignore or .git/info/exclude), then run the command again",
        )
    if isinstance(exc, LockHeld):  # named by the folder, which the laptop's user may not know
        return ApiError(
            exc.status,
            exc.code,
            f"The Manager's copy of {repo.name} is in use by another git command (its "
            f"{exc.lock} exists); {exc.todo}",
        )
    if isinstance(exc, Unwritable):  # "The Manager's copy of x may not be written at ..."
        todo = "whoever runs the Manager makes it writable there, then run the command again"
        return ApiError(exc.status, exc.code, f"{exc.what}; {todo}")
    if isinstance(exc, NoSpace):  # "the receiving disk" is not the laptop's
        log.warning("%s failed: %s", what, exc.message)
        # The repo's folder, or the folder of repos once a failed ``--create`` removed it.
        where = next(p for p in (repo.directory, *repo.directory.parents) if p.is_dir())
        return ApiError(
            exc.status,
            exc.code,
            f"No room on the Manager's disk for {what}: {exc.what}; whoever runs the Manager"
            f" frees some space on the disk of {where}, then run the command again",
        )
    if exc.status >= 500:
        if _services().stopping.wait(STOP_NOTICED):
            return ApiError(503, STOPPING, f"The Manager is stopping; {what} did not happen")
        damage = _lost_objects(repo.directory)
        if damage:
            log.warning("%s failed: %s is missing objects (git fsck: %s)", what, repo.name, damage)
            return ApiError(
                409,
                "repo_broken",
                f"The Manager's copy of {repo.name} at {repo.directory} is missing objects "
                f"its history needs (git fsck: {damage}).",
            )
        log.warning("%s failed: %s", what, exc.message)
    return _api_error(exc)


def _registry_full(exc: RegistryFull, what: str) -> ApiError:
    """The answer to a transfer whose record the registry could not write (its disk full)."""
    log.warning("%s failed: %s", what, exc)
    return ApiError(
        507,
        NoSpace.code,
        f"No room on the Manager's disk for {what}: {exc}; whoever runs the Manager frees some"
        " space on that disk, then run the command again",
    )


def _lost_objects(directory: Path) -> str | None:
    """git fsck's first complaint when the repo's refs reach objects it does not have (a
    restore or a disk fault took them), else None. Asked only after git failed: it walks
    the whole history (about 0.3 s on 53,000 objects here), so on a huge one it is stopped
    after FSCK_SECONDS rather than hold a Waitress thread, and the client, for minutes."""
    try:
        done = gitcmd.run(
            directory,
            "fsck", "--connectivity-only", "--no-dangling",
            check=False, timeout=FSCK_SECONDS,
        )  # fmt: skip
    except MirrorError as exc:  # out of time, no git, or the folder went (a failed --create)
        if directory.is_dir():
            log.warning("cannot tell whether %s lost objects: %s", directory, exc.message)
        return None
    if done.returncode == 0:
        return None
    said = [line for line in os.fsdecode(done.stdout + done.stderr).splitlines() if line.strip()]
    return said[0].removeprefix("error: ") if said else None


# The client's label of itself ("host:/path/to/checkout"): shown on the console and written
# into the receiving repo's reflog, so a longer one is cut there.
FROM_CHARS = 300


def _from_label() -> str:
    label = request.args.get("from", "")
    return label if len(label) <= FROM_CHARS else label[: FROM_CHARS - 1] + "…"


def _sender() -> str:
    """Who pushes or pulls, for the console: the client's own label and its address."""
    label = _from_label()
    address = request.remote_addr or "?"
    return f"{label} ({address})" if label else address


def _in_use(repo: Repo) -> bool:
    return bool(_services().streams.in_use(str(repo.directory)))


def _in_use_since(repo: Repo) -> float | None:
    return _services().streams.in_use_since(str(repo.directory))  # type: ignore[no-any-return]


def _tui_risk(repo: Repo) -> list[str]:
    """The push's 409 names how long a TUI has been attached (a forgotten one, or work)."""
    since = _in_use_since(repo)
    if since is None:
        return []
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(since))
    return [f"a TUI attached since {when}"]


@mirror_bp.get("/<int:repo_id>/head")
def head(repo_id: int) -> Any:
    """HEAD, branch, dirty and inUse, plus what the client needs to judge "dirty" itself,
    the tips a pack may assume, and the wire format's version. Repo 0 is the empty repo a
    ``push --create`` starts from."""
    if repo_id == 0:
        return jsonify(
            **{wire.VERSION_FIELD: wire.VERSION},
            head=None,
            branch=None,
            dirty=False,
            inUse=False,
            tips=[],
            limits=_limits(),
        )
    repo = _repo(repo_id)
    try:
        state = repo_state(repo.directory)
        tips = pack.tips(repo.directory)
    except MirrorError as exc:
        raise _failed(exc, f"the look at {repo.name}", repo) from None
    branch = request.args.get("branch")
    branch_head = None
    if branch:
        branch_head = gitcmd.maybe(
            repo.directory, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}"
        )
    # The client's own tip, when it lacks this side's commits to judge it by: a checkout that
    # never transferred (a fresh clone) whose tip this history holds has no commits to lose.
    ours, target = request.args.get("ours"), branch_head if branch else state.head
    merged = bool(
        ours
        and target
        and gitcmd.is_oid(ours)
        and gitcmd.ok(repo.directory, "merge-base", "--is-ancestor", ours, target)
    )
    # On a detached HEAD, the commits only it holds (and the client's ``ours`` lacks): a push
    # that moves HEAD would leave them (this side refuses unforced), so the client's advice
    # counts them as the Manager's work.
    detached_only = 0
    if state.branch is None and state.head:
        known = ours if gitcmd.is_oid(ours) else None
        if known and not gitcmd.ok(repo.directory, "cat-file", "-e", known):
            known = None
        detached_only = history.orphaned_by_move(repo.directory, state.head, known)
    return jsonify(
        **{wire.VERSION_FIELD: wire.VERSION},
        head=state.head,
        branch=state.branch,
        detachedOnly=detached_only,
        dirty=state.dirty,
        inUse=_in_use(repo),
        inUseSince=_in_use_since(repo),
        snapshot=state.snapshot,
        branchHead=branch_head,
        tips=tips,
        mergedTip=ours if merged else None,
        # The snapshot commit of the last push received: a push whose answer was lost is
        # found here by the checkout that sent it (ocm.mirror.state.PENDING_NAME).
        received=read_marker(repo.directory).get("commit"),
        repoId=repo.id,
        name=repo.name,
        limits=_limits(),
    )


def _limits() -> dict[str, int]:
    settings = _services().settings
    return {
        "maxUploadBytes": settings.max_upload_bytes,
        "maxArchiveBytes": settings.max_archive_bytes,
        "maxArchiveMembers": settings.max_archive_members,
    }


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "repo_exists", f"The Manager already has a repo named {name}.")


def _create_repo() -> Repo:
    """``push --create``: a new, empty repo registered as 'cloning' until the push lands."""
    settings = _services().settings
    name = request.args.get("name", "")
    problem = name_problem(name)
    if problem:
        raise ApiError(400, "bad_name", f"{problem}.")
    branch = request.args.get("branch", "") or "main"
    if not valid_branch(settings.repos_dir, branch):
        raise ApiError(400, "bad_branch", f"{branch[:80]!r} is not a valid git branch name.")
    origin_url = _origin_param()
    directory = settings.repos_dir / name
    registry = get_registry()
    known = taken_by(registry, name, directory)
    if known is not None:
        raise _name_taken(known)
    if directory.exists():
        # No repo of that name: a folder left by `repo remove` (files kept), or put there
        # by hand. Not "a repo named …", which `ocm list` would not show.
        raise ApiError(
            409,
            "folder_exists",
            f"The Manager keeps a folder named {name} among its repos, though no repo of"
            " that name is registered (one removed with its files kept, say).",
        )
    try:
        repo = registry.add_repo(
            name=name,
            directory=directory,
            branch=branch,
            # The laptop's origin may carry its owner's password; pages and logs show this one.
            origin_url=origin_url,
            status=CLONING,
        )
    except NameTaken:
        raise _name_taken(name) from None
    except RegistryFull as exc:
        raise _registry_full(exc, f"the push to {name}") from None
    try:
        directory.mkdir(parents=True)
        # Of the pushing checkout's kind (SHA-1 or SHA-256): git moves no objects between two.
        # (The option only where needed: a git before 2.29 has none.)
        kind = gitcmd.oid_format(request.args.get("snapshot", ""))
        sha256 = ["--object-format=sha256"] if kind == "sha256" else []
        gitcmd.run(directory, "init", "-q", *sha256, "-b", branch)
        (directory / ".git" / CREATING).touch()
        if repo.origin_url:  # as a clone would have it, so agents can fetch and push
            gitcmd.run(directory, "remote", "add", "--", "origin", repo.origin_url)
    except (OSError, MirrorError) as exc:
        _forget(repo)
        if isinstance(exc, NoSpace) or (isinstance(exc, OSError) and exc.errno in NO_ROOM):
            full = NoSpace.receiving(" while making the repo")
            raise _failed(full, f"the push to {name}", repo) from None
        raise ApiError(
            500, "create_failed", f"Could not create the repo directory: {exc}"
        ) from None
    except BaseException:  # a half-made repo would block its name: gone, whatever happened
        _forget(repo)
        raise
    return repo


def _point_origin_at(directory: Path, url: str) -> None:
    """The copy's own ``origin`` remote follows the origin its repo took, as a clone's would,
    so that an agent can fetch and push there: added where there was none, moved where it
    named a folder (``repo add`` of a checkout clones from its path). One set by hand is
    left alone, and a failure (another git holds the config) only logged: the push is done."""
    try:
        have = gitcmd.run(directory, "remote", "get-url", "origin", check=False)
        if have.returncode == 0 and not names_a_folder(os.fsdecode(have.stdout).strip()):
            return
        verb = "set-url" if have.returncode == 0 else "add"
        gitcmd.run(directory, "remote", verb, "--", "origin", url)
    except MirrorError as exc:
        log.warning("%s: its origin remote is as it was (%s)", directory, exc.message)


def _origin_param() -> str:
    """The pushing checkout's ``originUrl``, fit to store (pages and logs show it)."""
    origin_url = without_credentials(request.args.get("originUrl", ""))
    if len(origin_url) > MAX_URL_CHARS:
        raise ApiError(
            400, "bad_origin", f"The origin URL is longer than {MAX_URL_CHARS} characters."
        )
    return origin_url


def _forget(repo: Repo) -> None:
    try:
        get_registry().remove_repo(repo.id)
    except RegistryFull as exc:
        # Its folder stays with its CREATING mark: the next start forgets both.
        log.warning("the repo %s being created is forgotten at the next start: %s", repo.name, exc)
        return
    shutil.rmtree(repo.directory, ignore_errors=True)


def _check_version() -> None:
    try:
        wire.manager_check(request.args.get(wire.VERSION_PARAM))
    except MirrorError as exc:
        raise _api_error(exc) from None


def _settle(directory: Path, staging_dir: Path) -> None:
    """Refresh the index a push left without stat data for the files it wrote: at once,
    since every look at the work tree re-reads them until then, and again once the second
    they were written in is over, for those git still cannot trust ("racily clean")."""
    started = time.monotonic()
    settle_index(directory, staging_dir)
    time.sleep(max(0.0, SETTLE_DELAY - (time.monotonic() - started)))
    settle_index(directory, staging_dir)


@mirror_bp.post("/<int:repo_id>/up")
def up(repo_id: int) -> Any:
    """Receive a pack and make the repo match the snapshot it brings (SPEC §6); 409 when
    work would be lost."""
    _check_version()
    created = repo_id == 0 and _flag("create")
    repo = _create_repo() if created else _repo(repo_id)
    # A repo made from a checkout without origin (none recorded, or its folder's path) takes
    # the origin that checkout has since (a first `git push` to GitHub): other checkouts
    # with it then find this repo.
    offered = _origin_param() if not created and names_a_folder(repo.origin_url) else ""
    adopted = offered if offered and offered != repo.origin_url else None
    settings = _services().settings
    limits = Limits(settings.max_archive_bytes, settings.max_archive_members)
    force = _flag("force")

    def tui_attached() -> list[str]:
        return _tui_risk(repo)

    try:
        with contextlib.ExitStack() as locked:
            _lock(repo, locked)
            result = receive(
                repo.directory,
                request.stream,
                snapshot_commit=request.args.get("snapshot", ""),
                branch=request.args.get("headBranch") or None,
                staging_dir=settings.staging_dir,
                limits=limits,
                force=force,
                known={request.args.get("base") or None},
                marker_is_senders=False,
                side=f"The Manager's copy of {repo.name}",
                lacking_label="the push",
                extra_risks=tui_attached,
                sender=_from_label() or "a push",
                refresh_below=SETTLE_AFTER_FILES,
            )
    except MirrorError as exc:
        if created:
            _forget(repo)
        if exc.status < 500:
            log.info("push to %s refused: %s", repo.name, exc.message)
        raise _failed(exc, f"the push to {repo.name}", repo) from None
    except BaseException:
        if created:
            _forget(repo)
        raise
    registry = get_registry()
    try:
        registry.update_repo(repo.id, status=READY, branch=result.branch or "", origin_url=adopted)
    except RegistryFull as exc:
        if created:  # a repo the registry cannot make ready is no repo: forgotten
            _forget(repo)
            raise _registry_full(exc, f"the push to {repo.name}") from None
        # The push is done: the list shows the branch before until the next one.
        log.warning("the push to %s is done, but %s", repo.name, exc)
    (repo.directory / ".git" / CREATING).unlink(missing_ok=True)
    if adopted:
        log.info("%s takes the origin of the checkout that pushed: %s", repo.name, adopted)
        _point_origin_at(repo.directory, adopted)
    _note_transfer(registry, repo, "push")
    if result.changed >= SETTLE_AFTER_FILES:
        threading.Thread(
            target=_settle, args=(repo.directory, settings.staging_dir), daemon=True
        ).start()
    threading.Thread(target=repack_when_due, args=(repo.directory,), daemon=True).start()
    log.info(
        "push to %s: %s at %s, %d changed, %d deleted",
        repo.name,
        result.branch,
        result.head[:12],
        result.changed,
        result.deleted,
    )
    return jsonify(
        repoId=repo.id,
        name=repo.name,
        directory=str(repo.directory),
        branch=result.branch,
        head=result.head,
        changed=result.changed,
        deleted=result.deleted,
        saved=result.saved,
        wasBranch=None if created else result.was,
    )


def _note_transfer(registry: Registry, repo: Repo, kind: str, sender: str | None = None) -> None:
    """Record a transfer that is done for the console. A note: a registry that cannot be
    written (its disk full) must not make it a failure (a pull's answer was cut off)."""
    try:
        registry.record_transfer(repo.id, kind, sender or _sender())
    except RegistryFull as exc:
        log.warning("the %s of %s is done, but %s", kind, repo.name, exc)


def _branch_header(branch: str) -> tuple[str, str]:
    """The header that names /down's branch: quoted for a client that asks, as it is for
    one from before, which a branch outside ASCII (HTTP's limit) is refused to."""
    if request.args.get(wire.QUOTED_BRANCH_PARAM) == "1":
        return wire.QUOTED_BRANCH_HEADER, wire.quote_branch(branch)
    if not branch.isascii():
        raise WrongVersion(
            f"the branch {branch[:80]!r} needs an ocm that reads branch names outside ASCII:"
            " upgrade ocm on the client machine"
        )
    return wire.BRANCH_HEADER, branch


@mirror_bp.get("/<int:repo_id>/down")
def down(repo_id: int) -> Any:
    """Stream a pack of the repo's snapshot minus what the client has (``have``).

    The repo's lock is held until the last byte is sent, and released whenever the
    response is closed: finished, abandoned by the client, or cut by the server.
    """
    _check_version()
    repo = _repo(repo_id)
    # Asked of OpenCode while git makes the pack.
    busy = Task(busy_sessions, _services(), str(repo.directory))
    stack = contextlib.ExitStack()
    try:
        _lock(repo, stack)
        outgoing = prepare(repo.directory, count_bytes=False)  # the laptop checks its own limit
        branch_header = _branch_header(outgoing.snapshot.branch or "")
        stream = stack.enter_context(outgoing.open_pack(request.args.getlist("have")))
        # What this repo last sent: the next push from that laptop may assume it.
        pack.set_snapshot_ref(repo.directory, outgoing.snapshot.commit)
    except MirrorError as exc:
        stack.close()
        raise _failed(exc, f"the pull of {repo.name}", repo) from None
    except BaseException:
        stack.close()
        raise

    registry, sender = get_registry(), _sender()

    def body() -> Iterator[bytes]:
        with stack:
            yield from stream
            outgoing.delivered()
        _note_transfer(registry, repo, "pull", sender)
        # Once the lock is free: while the laptop writes the files, not before its answer.
        sizing = threading.Thread(
            target=size_sent, args=(repo.directory, outgoing.snapshot.tree), daemon=True
        )
        sizing.start()

    response = Response(body(), mimetype=wire.PACK_TYPE)
    response.headers[wire.SNAPSHOT_HEADER] = outgoing.snapshot.commit
    response.headers.set(*branch_header)
    response.headers[wire.BUSY_HEADER] = str(busy.result() or 0)
    if outgoing.selection.skipped:
        response.headers[wire.NOT_SENT_HEADER] = wire.quote_names(outgoing.selection.skipped)
    response.call_on_close(stack.close)  # the body may never run (HEAD, early disconnect)
    return response


def forget_interrupted_creates(registry: Registry) -> list[str]:
    """Forget the repos a ``push --create`` was making when the Manager stopped (call once
    at start-up); their names. Such a repo holds nothing the laptop lacks, and left behind
    (as an interrupted clone) its name and folder would refuse the ``push --create`` that
    makes it again."""
    names = []
    for repo in registry.list_repos():
        if repo.status == CLONING and (repo.directory / ".git" / CREATING).exists():
            registry.remove_repo(repo.id)
            shutil.rmtree(repo.directory, ignore_errors=True)
            names.append(repo.name)
    return names


def clean_staging(staging_dir: Path, repo_dirs: list[Path]) -> None:
    """Undo and delete what an interrupted push left in staging (call once at start-up).

    Also each repo's own ``.git/ocm-staging``, used when a repo lives on another filesystem
    than the data dir, and the mark of an index refresh the Manager was killed in: left
    there, a transfer meeting another one waited 10 s for a refresh that was long gone.
    """
    from ocm.mirror.receive import clean_leftovers, settling_marks
    from ocm.mirror.select import STAGING_NAME

    found = [clean_leftovers(staging_dir)]
    found += [clean_leftovers(directory / ".git" / STAGING_NAME) for directory in repo_dirs]
    for directory in repo_dirs:
        with contextlib.suppress(OSError):
            for mark in settling_marks(directory):
                mark.unlink(missing_ok=True)
    count = sum(one.undone for one in found)
    for line in (line for one in found for line in one.saved):
        log.warning("kept: %s", line)
    if count:
        log.warning("cleaned %d interrupted transfer(s) from %s", count, staging_dir)
