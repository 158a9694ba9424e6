"""The receiving side of a transfer, shared by the Manager (push) and the laptop (pull).

One call, :func:`receive`, does it all under the repo's lock: check the pack with git into
a quarantine in staging (same filesystem), check the snapshot it brings, move its objects
into the repository, write the files that differ into staging, check what would be lost,
save it when forced, switch the work tree (:mod:`ocm.mirror.swap`), move the branch and
HEAD, rebuild the index. Until the final "committed" mark everything is undone on failure,
and a crash is undone by :func:`clean_leftovers` on the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

from ocm.background import Task
from ocm.fsutil import atomic_write_text
from ocm.mirror import checkout, checks, gitcmd, history, pack, swap
from ocm.mirror.errors import (
    NO_ROOM,
    NOT_ALLOWED,
    BadPack,
    Busy,
    ChangedMeanwhile,
    LockHeld,
    MirrorError,
    NoSpace,
    OtherKind,
    Refused,
    Unfinished,
    Unwritable,
)
from ocm.mirror.pack import Limits, Progress
from ocm.mirror.select import STAGING_NAME, Selection, select
from ocm.mirror.snapshot import Snapshot, read_snapshot
from ocm.mirror.state import (
    RepoState,
    at_risk,
    copy_index,
    head_now,
    place_marker,
    read_marker,
    repo_state,
    write_marker,
)

LOCK_NAME = "ocm.lock"
# A mark of this name (one per settling, `ocm.settling.<id>`) is up while :func:`settling`
# holds the lock: a transfer then waits for it (a refresh of the index, which after a big
# push re-reads every file it wrote: 0.6 s on 21,000 files here, more on a slow disk) up
# to SETTLING seconds, where another transfer holding the lock is said at once.
SETTLING_NAME = "ocm.settling"
SETTLING = 10.0


def settling_marks(root: Path) -> list[Path]:
    """The marks of the settlings that hold the repo's lock or are about to."""
    return sorted((root / ".git").glob(f"{SETTLING_NAME}*"))


@contextlib.contextmanager
def repo_lock(root: Path, what: str = "another transfer", *, waits: bool = True) -> Iterator[None]:
    """One transfer per repo at a time, across threads and processes; never waits for
    another transfer (Busy), only for a moment of :func:`settle_index` (unless not
    ``waits``: a settling itself, whose own mark is up)."""
    handle = open(root / ".git" / LOCK_NAME, "a+b")  # noqa: SIM115 - held for the block
    try:
        deadline = time.monotonic() + SETTLING
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A lock held with no mark up is a transfer's (see :func:`settling`).
                settling = waits and settling_marks(root)
                if not settling or time.monotonic() >= deadline:
                    raise Busy(f"{what} to or from this repo is in progress") from None
                time.sleep(0.05)
        yield
    finally:
        handle.close()  # releases the lock, also when the process dies


class Received(NamedTuple):
    branch: str | None
    head: str
    changed: int
    deleted: int
    total: int  # bytes the received snapshot's files take
    # One line per thing kept aside (stash, backup refs), saying how to get it back.
    saved: list[str]
    was: str | None  # the branch HEAD was on before (None: detached)


def new_workdir(staging_dir: Path, root: Path) -> Path:
    """A fresh folder in ``staging_dir`` when that is on the repo's filesystem (renames
    must not copy), else in the repo's own ``.git/ocm-staging``."""
    staging_dir.mkdir(parents=True, exist_ok=True)
    if os.stat(staging_dir).st_dev != os.stat(root).st_dev:
        staging_dir = root / ".git" / STAGING_NAME
        staging_dir.mkdir(exist_ok=True)
    work = staging_dir / f"{history.stamp()}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    return work


@contextlib.contextmanager
def settling(root: Path) -> Iterator[None]:
    """The repo's lock for a moment of bookkeeping after a transfer: a transfer that comes
    meanwhile waits for it. Raises Busy while a transfer (or another settling) holds the
    repo. Its own mark goes up before the lock is tried and comes down after it is let go,
    so a transfer never meets a settling's lock with no mark up: one that did, at either
    end, was refused as "in progress" (seen in full runs, a test taking the lock right
    after a push's answer); so was one behind a settling whose mark another settling, one
    mark for all, had taken down on its way out."""
    mark = root / ".git" / f"{SETTLING_NAME}.{os.getpid()}-{secrets.token_hex(4)}"
    mark.touch()
    try:
        with repo_lock(root, waits=False):
            yield
    finally:
        mark.unlink(missing_ok=True)


def settle_index(root: Path, staging_dir: Path, attempts: int = 10, pause: float = 1.0) -> None:
    """Refresh the index after a transfer that wrote many files: until then git re-reads
    each (without stat data, see ``refresh_below``, or "racily clean": written in the
    index's second) on every look at the work tree (after a first push of 2,000 files,
    0.28 s a look instead of 0.01 s). While a transfer holds the repo it tries again
    ``pause`` seconds later: a pull leaves the index as it is. ``staging_dir`` holds the
    refresh's work folder, as a transfer's (:func:`new_workdir`)."""
    root, staging_dir = root.absolute(), staging_dir.absolute()  # git gets paths to staging
    for _ in range(attempts):
        try:
            with settling(root):
                _refresh_under_lock(root, staging_dir)
            return
        except Busy:
            time.sleep(pause)
        # The repo is gone (deleted meanwhile), or another git holds its index (GitBusy):
        # given up, as `git update-index --refresh` gives up on a lock it meets. That git,
        # if it writes the index, gives what it looks at stat data, and the Manager's
        # second settling comes a second later; waiting would only hold off the next git.
        except (OSError, MirrorError):
            return


def _refresh_under_lock(root: Path, staging_dir: Path) -> None:
    """Refresh a copy of the index and rename it over the index, under the lock the switch
    takes (:func:`lock_index`). Git's own refresh of ``.git/index`` took ``index.lock``
    itself: a Manager killed meanwhile (systemd's stop, about a second on a big repo) left
    it, refusing every later transfer and the agent's own ``git add`` until deleted by
    hand; this one :func:`clean_leftovers` removes. Killed at any moment, the index is the
    old one or the refreshed one."""
    work = new_workdir(staging_dir, root)
    try:
        taken = lock_index(root, "the repo", work)
        try:
            # Dated like the index: git judges "racily clean" entries by the index's time.
            # Not named "index": git would lock it as "index.lock", the lock taken here.
            copy = work / "index.refreshed"
            copy_index(root / ".git" / "index", copy)
            history.refresh_index(root, {"GIT_INDEX_FILE": str(copy)})
            os.replace(copy, root / ".git" / "index")
        finally:
            unlock_index(root, taken)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def repack_when_due(root: Path) -> None:
    """Run git's own ``gc --auto``, which the mirror's git commands switch off: every push
    leaves a pack in the receiving repo, and a Manager repo nobody commits in was never
    repacked (with 500 packs, ``git status`` took 26 ms instead of 4). Beside transfers,
    not under the repo's lock: git's pack and object tools read through a repack, which
    can take minutes. The repo's own ``gc.auto`` (0: never) is honoured."""
    configured = gitcmd.own_int(root, "gc.auto")
    threshold = 6700 if configured is None else configured  # git's default
    if threshold > 0:
        with contextlib.suppress(MirrorError):
            gitcmd.run(root, "-c", f"gc.auto={threshold}", "gc", "--auto", "--quiet", check=False)


def size_sent(root: Path, tree: str) -> None:
    """Record the bytes the files of ``tree``, just sent, take: the next push into this repo
    is then sized by what it changes from ``tree``, not from the last snapshot received. A
    push after a pull of 1,000 changed files spared reading their blobs (60-100 ms: most
    are loose objects). Only for sizing: what the other side is known to have stays what
    this side received. A cache: skipped while a transfer holds the repo."""
    with contextlib.suppress(Busy, OSError, MirrorError), settling(root):
        marker = read_marker(root)
        base = checks.base_of(marker)
        if base is None or base.tree == tree:
            return
        found = checks.changes(root, {}, base.tree, tree)
        if found is not None:  # else git could not compare the two: nothing cheap to keep
            total = checks.sized(root, {}, base, found)[0]
            write_marker(root, {**marker, checks.SIZED_KEY: {"tree": tree, "bytes": total}})


def _lost(count: int, where: str, label: str) -> str:
    return f"{count} commit{'s' if count > 1 else ''} on {where} that {label} lacks"


def _risks(
    root: Path,
    state: RepoState,
    incoming: Snapshot,
    tip: str | None,
    known: set[str | None],
    plan: swap.Plan,
    lacking_label: str,
) -> tuple[list[str], str | None, str | None]:
    """What the switch would lose: (descriptions, branch tip to back up, detached tip).
    ``tip`` is the receiver's own commit for the incoming branch."""
    risks = ["uncommitted changes"] if at_risk(state, known) else []
    lost = history.commits_lacking(root, tip, incoming.head) if tip else 0
    if lost:
        risks.append(_lost(lost, str(incoming.branch), lacking_label))
    detached = state.head if state.branch is None and state.head != incoming.head else None
    orphaned = history.orphaned_by_move(root, detached, incoming.head) if detached else 0
    if orphaned:
        risks.append(_lost(orphaned, "a detached HEAD", lacking_label))
    if plan.clobbered_ignored:
        risks.append(f"ignored files where incoming files go ({plan.clobbered_ignored[0]})")
    return risks, tip if lost else None, detached if orphaned else None


def refuse_other_kind(root: Path, snapshot_commit: str, side: str, sender: str) -> None:
    """Raise OtherKind when the refused pack came from a repository of the other hash
    function: git's own words for it ("bogus commit object") would not say so. Asked only
    once a pack is refused, so the everyday transfer pays nothing for it."""
    if not gitcmd.is_oid(snapshot_commit):
        return
    ours, theirs = gitcmd.object_format(root), gitcmd.oid_format(snapshot_commit)
    if ours != theirs:
        raise OtherKind(side, ours, sender, theirs)


def receive(
    root: Path,
    stream: IO[bytes],
    *,
    snapshot_commit: str,
    branch: str | None,
    staging_dir: Path,
    limits: Limits,
    force: bool,
    known: Iterable[str | None] = (),
    marker_is_senders: bool = True,
    side: str = "the receiving repo",
    lacking_label: str = "the incoming history",
    extra_risks: Callable[[], list[str]] | None = None,
    sender: str = "ocm",
    progress: Progress | None = None,
    remember: Mapping[str, Any] | None = None,
    looked: Task[tuple[Selection, RepoState]] | None = None,
    refresh_below: int | None = None,
) -> Received:
    """Make the work tree at ``root`` identical to the snapshot the pack in ``stream`` brings.

    ``snapshot_commit`` and ``branch`` (None: a detached HEAD) come with the pack. The
    caller holds :func:`repo_lock`. ``known`` are snapshots the other side is known to
    have (see :mod:`ocm.mirror.state`). ``marker_is_senders``: the state this side's last
    transfer left is the sender's too — true for a checkout, whose one other side is the
    Manager; false for the Manager, which many checkouts push to: the state one of them
    left is not work another has. ``extra_risks`` is asked right before the switch
    (the Manager: "a TUI is attached"). Raises Refused (409) listing what would be lost,
    unless ``force``: then it is saved first and the ``saved`` lines say where. Raises
    NoSpace when the disk fills up on the way (what was switched is undone first).
    ``remember`` adds facts about the other side to this side's marker. ``looked``: a
    :func:`look` the caller started under its lock (else it starts here).
    ``refresh_below``: when this many files or more changed, the index's refresh is left
    to the caller (:func:`settle_index` after the answer).
    """
    # git runs in the repo with paths to staging in its environment: they must be absolute
    # (a Manager started with a relative --data-dir has relative ones).
    root, staging_dir = root.absolute(), staging_dir.absolute()
    work = new_workdir(staging_dir, root)
    committed = undone = False
    # This side's own state needs nothing from the pack: git looks at the work tree while
    # index-pack and the first checks run (the caller's lock keeps it from changing hands).
    looked = looked or Task(look, root)
    try:
        quarantine = work / "objects"
        try:
            count = pack.index_pack(root, stream, quarantine, limits, progress)
            env = pack.quarantine_env(root, quarantine)
            incoming = read_snapshot(root, env, snapshot_commit, branch)
        except BadPack:
            refuse_other_kind(root, snapshot_commit, side, lacking_label)
            raise
        marker = read_marker(root)
        weighed = checks.weigh(root, env, incoming, limits, checks.base_of(marker))
        # Checked against this side's own tree: only what differs is looked at and written.
        current, state = looked.result()
        refuse_unfinished(root, current, side)
        refuse_branch_elsewhere(root, incoming.branch, side)
        found = checks.check(root, env, incoming, weighed, current, state.snapshot)
        incoming_names = [entry.path for entry in found.to_write]
        refuse_hidden_edits(root, current, incoming_names + found.gone, side)
        swap.refuse_names_not_taken(work, root, incoming_names, side)
        folded = swap.name_folding(work)
        if folded:
            swap.refuse_name_clashes(incoming_names, found.gone, current.files, side, folded)
        migrated = pack.migrate(quarantine, root) if count else []
        try:
            checkout.write(root, found.to_write, work / "new", work / "checkout-index", found.sizes)
        except NoSpace:
            # No room for the files: the pack goes too, or it would stay on the full disk
            # (unreferenced until git's gc) and come again with the next try.
            pack.unmigrate(migrated)
            raise
        plan = swap.make_plan(
            root, work / "new", incoming_names, found.gone, current.files, side, folded=folded
        )
        # Nothing is lost by overwriting a state with itself, or one the sender has.
        known_set = {*known, incoming.tree}
        if marker_is_senders:
            known_set.add(marker.get("snapshot"))
        tip = _branch_tip(root, state, incoming.branch)
        risks, branch_old, detached_old = _risks(
            root, state, incoming, tip, known_set, plan, lacking_label
        )
        risks += extra_risks() if extra_risks else []
        if risks and not force:
            raise Refused(f"{side} has {'; '.join(risks)}, which this transfer would overwrite")
        # The record of the state this transfer leaves, written now: a disk that fills up
        # fails the transfer here, before its switch, and not the record after it (the
        # next transfer would weigh this one's files as work of this side's own). Its
        # snapshot is the incoming tree (what the receiver ignores or keeps is in no
        # snapshot it computes either); its bytes size the next transfer's check; its
        # commit lets the next push assume what this transfer left on both sides.
        record = {"snapshot": incoming.tree, "bytes": found.total, "commit": incoming.commit}
        record.update(head=incoming.head, branch=incoming.branch, **(remember or {}))
        staged_marker = write_marker(root, {**record, "from": sender}, staged_in=work)
        # Before anything is saved or switched: a stash, too, is refused under another
        # git's lock.
        index_lock = lock_index(root, side, work)
        try:
            refuse_changed_meanwhile(root, state, plan, side)
            saved = (
                _save(
                    root,
                    current,
                    state,
                    plan,
                    branch_old,
                    detached_old,
                    known_set,
                    incoming,
                    marker,
                )
                if force
                else []
            )
            result = Received(
                incoming.branch,
                incoming.head,
                plan.changed,
                plan.deleted,
                found.total,
                saved,
                state.branch,
            )

            refs = {
                "head_ref": f"refs/heads/{state.branch}" if state.branch else None,
                "head": state.head,
                "branch": incoming.branch,
                "branch_old": tip,
            }
            if (root / ".git" / "index").exists():
                copy_index(root / ".git" / "index", work / "index.old")
            swap.write_plan(work, root, plan, refs)
            try:
                swap.apply(work, root, plan)
                # The new index is built before HEAD moves: a disk that fills up meanwhile
                # fails the switch while its refs are where they were, since the undo could
                # not move them back (git writes a lock file to move a ref).
                refresh = refresh_below is None or plan.changed < refresh_below
                index = work / "index.new"  # not "index": git's own lock is "index.lock"
                history.rebuild_index(
                    root, incoming, refresh, incoming_names, current.entries, index
                )
                history.move_head(root, incoming, f"ocm: mirrored from {sender}", state.branch)
                os.replace(index, root / ".git" / "index")
            except BaseException as exc:
                _undo(work, root, plan.ops, refs, plan.ids)
                undone = True
                if isinstance(exc, OSError) and exc.errno in NOT_ALLOWED:
                    raise _unwritable(side, root, exc) from None
                raise
            (work / swap.COMMITTED).touch()
            committed = True
        finally:
            unlock_index(root, index_lock)
        # The switch is done; what follows is bookkeeping that must not turn it into an
        # error (a missing marker only makes the next safety check more careful).
        with contextlib.suppress(Exception):
            pack.set_snapshot_ref(root, incoming.commit)
            if state.kept is not None:  # the look's index: the next look re-hashes less
                state.kept.save(root)
            swap.prune_empty_dirs(root, [name for kind, name in plan.ops if kind == "del"])
            swap.make_submodule_dirs(root, found.gitlinks)
            place_marker(root, staged_marker)
        return result
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        # Everything a transfer writes is on the receiving repo's disk (its staging too):
        # the disk filled up after the checks for room (another program writing to it).
        raise NoSpace.receiving(": it filled up during the transfer") from None
    finally:
        looked.wait()  # a failed check waits for git's look to end, then cleans up
        # Kept only when the process is dying mid-switch: the next start undoes it.
        if committed or undone or not (work / swap.PLAN).exists():
            shutil.rmtree(work, ignore_errors=True)


def _unwritable(side: str, root: Path, exc: OSError) -> Unwritable:
    where = exc.filename2 or exc.filename  # a rename names its target second
    shown = os.path.relpath(where, root) if where else "a file"
    return Unwritable(
        f"{side} may not be written at {shown} ({exc.strerror}); nothing was changed",
        "make it writable, then run the command again",
    )


INDEX_LOCK = "index.lock"
# In a transfer's staging folder: the index lock it took, for the undo of a killed process.
_LOCK_RECORD = "index-lock.json"


def lock_index(root: Path, side: str, work: Path) -> str:
    """Take git's own lock on the index for the switch (and for :func:`settle_index`), as
    every git command that writes the index does: a git at work there (a commit, an
    editor's ``git add``) would else rename its index over the one the switch builds.
    Returns what tells this lock apart from one a git took later (device and inode), for
    :func:`unlock_index`.

    The lock is made in ``work`` (on the repo's filesystem) and recorded there before it is
    linked into place: a process killed at any moment after leaves a lock
    :func:`clean_leftovers` knows for its own. (A killed transfer that took it before its
    plan was written left a lock nothing removed: every later transfer, and the agent's
    own ``git add``, was refused.)"""
    lock = root / ".git" / INDEX_LOCK
    taken = _made(work / INDEX_LOCK, root, work)
    try:
        os.link(work / INDEX_LOCK, lock)
    except FileExistsError:
        raise LockHeld(side, f".git/{INDEX_LOCK}") from None
    except OSError:  # no hard links on this filesystem: made in place, recorded just after
        try:
            taken = _made(lock, root, work)
        except FileExistsError:
            raise LockHeld(side, f".git/{INDEX_LOCK}") from None
    return taken


def _made(path: Path, root: Path, work: Path) -> str:
    """Create ``path`` (not there yet) and record it in ``work`` as ``root``'s index lock."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        found = os.fstat(fd)
    finally:
        os.close(fd)
    taken = f"{found.st_dev}:{found.st_ino}"
    atomic_write_text(work / _LOCK_RECORD, json.dumps({"root": str(root), "lock": taken}))
    return taken


def unlock_index(root: Path, taken: str | None) -> None:
    """Remove the index lock :func:`lock_index` took (``taken``), never another's."""
    path = root / ".git" / INDEX_LOCK
    with contextlib.suppress(OSError):
        found = os.lstat(path)
        if taken == f"{found.st_dev}:{found.st_ino}":
            path.unlink()


def _unlock_recorded(work: Path) -> None:
    """Remove the index lock the transfer staged in ``work`` took, if it still holds it."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads((work / _LOCK_RECORD).read_text(encoding="utf-8"))
        unlock_index(Path(record["root"]), str(record["lock"]))


def _branch_tip(root: Path, state: RepoState, branch: str | None) -> str | None:
    """This side's commit for ``branch``: HEAD's, when HEAD is on it (no git call)."""
    if branch is None:
        return None
    return state.head if branch == state.branch else history.branch_tip(root, branch)


# What git leaves in .git while an operation waits for the user, and how to abort it.
_UNFINISHED = (
    ("MERGE_HEAD", "a merge", "git merge --abort"),
    ("rebase-merge", "a rebase", "git rebase --abort"),
    ("rebase-apply", "a rebase or `git am`", "git rebase --abort` or `git am --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --abort"),
    ("REVERT_HEAD", "a revert", "git revert --abort"),
)


def refuse_unfinished(root: Path, current: Selection, side: str) -> None:
    """Raise Unfinished when ``root`` is in the middle of a merge, rebase or the like, or has
    unresolved conflicts. ``--force`` does not help: a switch would leave git's record of the
    operation pointing at a work tree that is gone (a later commit a bogus merge)."""
    for name, operation, abort in _UNFINISHED:
        if (root / ".git" / name).exists():
            raise Unfinished(
                f"{side} is in the middle of {operation}",
                f"finish it, or abort it (`{abort}`), then run the command again",
            )
    if current.unmerged:
        first = sorted(current.unmerged)[0]
        more = f" and {len(current.unmerged) - 1} more" if len(current.unmerged) > 1 else ""
        raise Unfinished(
            f"{side} has unresolved conflicts ({first}{more})",
            "resolve them (edit, then `git add` each file), then run the command again",
        )


def refuse_changed_meanwhile(root: Path, state: RepoState, plan: swap.Plan, side: str) -> None:
    """Raise ChangedMeanwhile when a file the switch replaces or deletes is no longer what
    the look saw, or HEAD moved since: what is at risk was weighed against that look, taken
    while the pack was checked and its files staged (a pull's: before it downloaded), and
    an agent or an editor may have written since, which nothing would keep. Asked under
    git's index lock, right before the switch; ``--force`` does not help (its stash holds
    what the look saw)."""
    if head_now(root) != (state.head, state.branch):
        detail = "its HEAD moved"
    else:
        touched = [name for kind, name in plan.ops if kind in ("rep", "del")]
        changed = history.changed_since(root, state.kept, touched) if state.kept else []
        if not changed:
            return
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        detail = f"{changed[0]}{more} changed"
    raise ChangedMeanwhile(
        f"{side} changed while this transfer was under way ({detail}); nothing was changed",
        "run the command again: it then weighs that change",
    )


def refuse_hidden_edits(root: Path, current: Selection, touched: list[str], side: str) -> None:
    """Raise Unfinished when the switch would replace or delete a file git is told not to
    look at (``--assume-unchanged``, ``--skip-worktree``) that differs from its index entry:
    this side's snapshot holds the entry, so the edit is in no snapshot, stash or backup,
    and would be lost without a word. Git's own checkout refuses it too. ``--force`` does
    not help; un-hiding the file makes it an ordinary change, which is saved."""
    hidden = [name for name in touched if name in current.hidden]
    edited = [name for name in hidden if _differs_from_index(root, name, current.entries)]
    if edited:
        first = edited[0]
        more = f" and {len(edited) - 1} more" if len(edited) > 1 else ""
        raise Unfinished(
            f"{side} has changes to {first}{more}, which git is told to ignore "
            "(`git update-index --assume-unchanged` or `--skip-worktree`), and this "
            "transfer would overwrite them",
            f"run `git update-index {current.hidden[first]} -- {shlex.quote(first)}` in it "
            "(and for each other such file), then run the command again",
        )


def _differs_from_index(root: Path, name: str, entries: Mapping[str, str]) -> bool:
    """Whether the file at ``name`` is not what its index entry holds (absent: it is not)."""
    path = root / name
    if not os.path.lexists(path):
        return False  # a sparse checkout's skip-worktree files are not there
    if not path.is_file() or path.is_symlink():
        return True
    # Hashed as `git add` would (its clean filters and line endings): only the few hidden
    # files a transfer changes are read.
    return gitcmd.out(root, "hash-object", "--", name) != entries.get(name, "").partition(" ")[2]


def refuse_branch_elsewhere(root: Path, branch: str | None, side: str) -> None:
    """Raise Unfinished when ``branch`` is checked out in another worktree of ``root``'s
    repository (``git worktree add``). Moving it would move that worktree's HEAD under its
    files, which would then read as undoing the incoming commits; git's own checkout
    refuses it too. ``--force`` does not help."""
    if branch is None or not (root / ".git" / "worktrees").is_dir():  # the usual case: a stat
        return
    listed = gitcmd.split_z(gitcmd.run(root, "worktree", "list", "--porcelain", "-z").stdout)
    here, path = root.resolve(), None
    for line in listed:
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        # One whose folder is gone is git's to prune, not in the way.
        elif (
            line == f"branch refs/heads/{branch}"
            and path
            and path.resolve() != here
            and path.is_dir()
        ):
            raise Unfinished(
                f"{side} has the incoming branch {branch} checked out in another worktree ({path})",
                f"detach that worktree (`git -C {shlex.quote(str(path))} switch --detach`)"
                ", then run the command again",
            )


def look(root: Path) -> tuple[Selection, RepoState]:
    """This side's own state: what travels from its work tree, and what that is."""
    current = select(root)
    return current, repo_state(root, current)


def _save(
    root: Path,
    current: Selection,
    state: RepoState,
    plan: swap.Plan,
    branch_old: str | None,
    detached_old: str | None,
    known: set[str | None],
    incoming: Snapshot,
    marker: Mapping[str, Any],
) -> list[str]:
    saved: list[str] = []
    when = history.stamp()
    if at_risk(state, known):
        where = history.save_worktree(
            root,
            current,
            state.head,
            state.branch,
            f"before ocm mirror {when}",
            shared=marker.get("commit"),
        )
        if where.startswith("refs/"):
            saved.append(f"uncommitted changes: `git checkout {where} -- .`")
        else:
            saved.append(f"uncommitted changes: `git stash apply {where}`")
    if branch_old and incoming.branch:
        ref = history.backup_ref(root, incoming.branch, branch_old, when)
        saved.append(f"old {incoming.branch}: `git branch {incoming.branch}-old {ref}`")
    if detached_old:
        ref = history.backup_ref(root, "HEAD", detached_old, when)
        saved.append(f"old detached HEAD: `git checkout {ref}`")
    if plan.clobbered_ignored:
        keep = root / ".git" / "ocm-overwritten" / when
        for name in plan.clobbered_ignored:
            (keep / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, keep / name, follow_symlinks=False)
        saved.append(f"overwritten ignored files: copies in {keep}")
    return saved


def _undo(
    work: Path,
    root: Path,
    ops: list[tuple[str, str]],
    refs: dict[str, str | None],
    ids: Mapping[str, swap.Identity] | None,
) -> Path | None:
    """Put files, refs and index back as they were before the switch; returns the folder
    where files changed since were moved (see :func:`swap.rollback`), if any.

    Refs are only written where they moved, so an undo of a switch that never reached the
    refs leaves no trace in the reflog.
    """
    kept = swap.rollback(work, root, ops, ids)
    branch, branch_old = refs.get("branch"), refs.get("branch_old")
    if branch and history.branch_tip(root, branch) != branch_old:
        moved = (
            [f"refs/heads/{branch}", branch_old] if branch_old else ["-d", f"refs/heads/{branch}"]
        )
        gitcmd.run(root, "update-ref", "-m", "ocm: undo", *moved, check=False)
    head_ref, head = refs.get("head_ref"), refs.get("head")
    if head_ref and gitcmd.maybe(root, "symbolic-ref", "-q", "HEAD") != head_ref:
        gitcmd.run(root, "symbolic-ref", "HEAD", head_ref, check=False)
    elif not head_ref and head and history.head_commit(root) != head:
        gitcmd.run(root, "update-ref", "--no-deref", "-m", "ocm: undo", "HEAD", head, check=False)
    if (work / "index.old").exists():
        os.replace(work / "index.old", root / ".git" / "index")
    return kept


class Leftovers(NamedTuple):
    undone: int  # folders found in staging
    # One line per folder of files changed after a crash that the undo moved aside.
    saved: list[str]


def clean_leftovers(staging_dir: Path) -> Leftovers:
    """Undo interrupted switches and delete everything in ``staging_dir``.

    Call it when nothing can be receiving into ``staging_dir`` (the Manager at start-up;
    the laptop under the repo lock).
    """
    found = Leftovers(0, [])
    if not staging_dir.is_dir():
        return found
    count = 0
    for work in sorted(staging_dir.iterdir()):
        count += 1
        if work.is_dir() and not (work / swap.COMMITTED).exists():
            plan = swap.load_plan(work)
            if plan is not None and (plan.root / ".git").is_dir():
                kept = _undo(work, plan.root, plan.ops, plan.refs, plan.ids)
                if kept is not None:
                    found.saved.append(_kept_line(kept))
        if work.is_dir() and not work.is_symlink():
            # Killed before its plan, once committed, or settling the index: still held.
            _unlock_recorded(work)
            shutil.rmtree(work, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                work.unlink()
    return found._replace(undone=count)


def _kept_line(folder: Path) -> str:
    count = len(swap.walk_files(folder))
    files = f"{count} file{'' if count == 1 else 's'}"
    return (
        f"{files} changed after an interrupted transfer, which was undone: "
        f"moved to {folder} (copy back what you want to keep)"
    )
