"""What a repo looks like right now, compared with its HEAD and its last mirror.

The *snapshot* of a work tree is the git tree id of exactly the files that would travel
(:mod:`ocm.mirror.select`), with their current content and modes. It is computed in a
throw-away index that starts as a copy of the real one (or the last snapshot's,
:mod:`ocm.mirror.kept_index`), so unchanged files are not re-read (git's stat cache); a
mere look uses ``--info-only`` so no blob is written.

``dirty`` is the plain git notion: the snapshot differs from ``HEAD``'s tree. But after a
transfer the receiver *is* dirty when the sender had uncommitted changes, and that is not
work of its own. So each side keeps a marker, ``.git/ocm-mirror.json``, with the snapshot
of the state the last transfer left (or sent). Changes are only "at risk" when the tree
differs from HEAD *and* from every state the other side is known to have.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ocm.mirror import gitcmd, kept_index
from ocm.mirror.errors import MirrorError, NoSpace, Unreadable
from ocm.mirror.select import MARKER_NAME, Selection, select


class RepoState(NamedTuple):
    head: str | None  # commit id, None on an unborn branch
    branch: str | None  # None when HEAD is detached
    head_tree: str | None
    snapshot: str  # the tree of the work tree as it is (what would travel)
    # The index the look was built in (its stat data are the look's): the receiver's switch
    # checks that what it replaces is still as looked at, and keeps it once it succeeded.
    kept: kept_index.Kept | None = None

    @property
    def dirty(self) -> bool:
        return self.snapshot != self.head_tree


@contextlib.contextmanager
def temp_index(root: Path, *, copy_real: bool) -> Iterator[dict[str, str]]:
    """An env pointing ``GIT_INDEX_FILE`` at a private index file inside ``.git``."""
    _sweep_temp_indexes(root / ".git")
    fd, name = tempfile.mkstemp(prefix=f"{_TEMP_INDEX}{os.getpid()}-", dir=root / ".git")
    os.close(fd)
    os.unlink(name)  # git refuses an empty index file; "absent" means "empty index"
    try:
        if copy_real and (root / ".git" / "index").exists():
            copy_index(root / ".git" / "index", Path(name))
        yield {"GIT_INDEX_FILE": name}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name + ".lock")


def copy_index(source: Path, target: Path) -> None:
    """Copy an index file with its modification time. Git trusts an entry's stat data only
    for a file last changed before the second the index was written, and tells that second
    by the index file's own time: a copy dated now would vouch for a file rewritten in that
    second with the same size, which ``git status`` shows changed and a snapshot would miss.
    (Timed before the copy: an index replaced meanwhile only makes more entries racy.)"""
    mtime = os.stat(source).st_mtime_ns
    shutil.copyfile(source, target)
    os.utime(target, ns=(mtime, mtime))


_TEMP_INDEX = "ocm-index-"
# A temp index whose name carries no process id (or one that cannot be read) is judged by
# its age: no look takes this long.
_STALE_AFTER = 3600.0


def _sweep_temp_indexes(git_dir: Path) -> None:
    """Delete the temp indexes (and their ``.lock``) of processes that died (SIGKILL, power
    loss) before their cleanup ran: each killed push or pull left one, never deleted."""
    try:
        names = [n for n in os.listdir(git_dir) if n.startswith(_TEMP_INDEX)]
    except OSError:
        return
    for name in names:
        pid = name[len(_TEMP_INDEX) :].split("-", 1)[0]
        if pid.isdigit() and "-" in name[len(_TEMP_INDEX) :]:
            if _alive(int(pid)):
                continue
        else:
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(git_dir / name).st_mtime < _STALE_AFTER:
                    continue
        with contextlib.suppress(OSError):
            os.unlink(git_dir / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


def tree_of(
    root: Path,
    paths: list[str],
    *,
    base_index: bool,
    write_blobs: bool,
    remove: list[str] | None = None,
) -> str:
    """The tree id of ``paths`` as they are in the work tree (raises as
    :func:`_updated_tree` does).

    ``base_index``: start from the real index (tracked entries not listed keep their index
    state); otherwise start empty. ``remove`` lists paths to drop from the tree.
    """
    with temp_index(root, copy_real=base_index) as env:
        return _updated_tree(root, env, (remove or []) + paths, write_blobs=write_blobs)


def _updated_tree(
    root: Path,
    env: dict[str, str],
    paths: list[str],
    *,
    write_blobs: bool,
    links: Collection[str] = (),
) -> str:
    """The tree of the index ``env`` names once ``paths`` are as in the work tree, the
    deleted ones first (a file and a folder of one name, the folder's files added before the
    file was removed, make git refuse them all as "both a file and a directory"). Raises
    Unreadable (or NoSpace) when git cannot hash a file, GitError when it cannot write the
    tree (an object the index names is missing).

    ``links``: the symlinks among ``paths``, whose blobs are written even when the others'
    are not. Git tells whether a link still matches its entry by reading that blob (a file
    it hashes afresh): without it, git marks the entry of a link newer than the index as
    changed, for good, and the check right before a switch refused every try."""
    batches: list[tuple[list[str], list[str]]] = [(paths, [])]
    if not write_blobs:
        batches = [
            ([name for name in paths if name not in links], ["--info-only"]),
            ([name for name in paths if name in links], []),
        ]
    for names, info_only in batches:
        if not names:  # a clean work tree spares a git command
            continue
        done = gitcmd.run(
            root, "update-index", "--add", "--remove", *info_only, "-z", "--stdin",
            input=gitcmd.join_z(names), env=env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise _unhashed(root, done.returncode, done.stderr)
    missing_ok = [] if write_blobs else ["--missing-ok"]
    done = gitcmd.run(root, "write-tree", *missing_ok, env=env, check=False)
    if done.returncode != 0:
        raise gitcmd.GitError(
            f"git write-tree failed in {root}: {gitcmd.first_error(done.stderr)}",
            "`git fsck` there shows what is missing or broken",
        )
    return os.fsdecode(done.stdout).strip()


def _unhashed(root: Path, returncode: int, stderr: bytes) -> MirrorError:
    """Why git could not hash the work tree's files: a full disk, a file it may not read (a
    container's output owned by root, say), or another of git's errors (an object folder
    it may not write)."""
    said = gitcmd.first_error(stderr)
    if gitcmd.out_of_space(returncode, stderr):
        return NoSpace(f"the disk of {root} is full ({said})", "free some space and try again")
    if said.startswith('open("'):
        return Unreadable(root, said)
    return gitcmd.GitError(f"git update-index failed in {root}: {said}")


def snapshot(root: Path, selection: Selection) -> str:
    """The tree of every file that travels, as it is now, its blobs written."""
    return tree_of(
        root,
        selection.unsettled(selection.files),
        base_index=True,
        write_blobs=True,
        remove=selection.deleted,
    )


def staged_and_snapshot(
    root: Path, selection: Selection, *, write_blobs: bool = True
) -> tuple[str | None, str, kept_index.Kept | None]:
    """(the tree of what is staged, :func:`snapshot`, the index to keep for the next
    snapshot) from one throw-away index: the first ``write-tree`` leaves a cache of trees
    the second reuses, and the last snapshot's index (:mod:`ocm.mirror.kept_index`) spares
    re-hashing what it already hashed. The staged tree is None when the index has
    unresolved conflicts; then the snapshot is of the work tree as it is, its blobs not
    written (no snapshot commit is made of it), and nothing is kept."""
    with temp_index(root, copy_real=True) as env:
        staged = gitcmd.maybe(root, "write-tree", env=env)
        paths = selection.deleted + selection.unsettled(selection.files)
        if staged is None:
            tree = _updated_tree(root, env, paths, write_blobs=False, links=selection.links)
            return None, tree, None
        if not paths:  # the work tree is as staged: the copy of the index says what it is
            return staged, staged, kept_index.taken(Path(env["GIT_INDEX_FILE"]), staged, [])
        index_file = Path(env["GIT_INDEX_FILE"])
        kept = kept_index.start_from_kept(root, index_file, staged, selection.entries, paths)
        try:
            tree = _updated_tree(root, env, paths, write_blobs=write_blobs, links=selection.links)
        except gitcmd.GitError:
            if not kept:
                raise
            # It named a blob gone since (pruned): hash it all again.
            copy_index(root / ".git" / "index", index_file)
            tree = _updated_tree(root, env, paths, write_blobs=write_blobs, links=selection.links)
        return staged, tree, kept_index.taken(index_file, staged, paths)


def index_tree(root: Path) -> str | None:
    """The tree of what is staged; None when the index has unresolved conflicts."""
    with temp_index(root, copy_real=True) as env:
        return gitcmd.maybe(root, "write-tree", env=env)


class Head(NamedTuple):
    commit: str | None  # None on an unborn branch
    branch: str | None  # None when HEAD is detached
    tree: str  # the empty tree on an unborn branch
    date: str  # the commit's committer time as git's raw date, in UTC ("<seconds> +0000")


def read_head(root: Path) -> Head:
    """HEAD's commit, branch, tree and date: two git commands, whatever is asked of them
    (a third on an unborn branch)."""
    branch = current_branch(root)
    (found,) = gitcmd.read_objects(root, ["HEAD^{commit}"])
    if found is None:  # unborn: it "has" the empty tree, whose id is SHA-1's or SHA-256's
        empty = gitcmd.out(root, "hash-object", "-t", "tree", "--stdin", input=b"")
        return Head(None, branch, empty, "0 +0000")
    headers = gitcmd.commit_headers(found.content)
    committer = headers.get("committer", ["0 +0000"])[0]
    date = committer.rsplit(" ", 2)[-2] + " +0000"
    return Head(found.oid, branch, headers["tree"][0], date)


def head_now(root: Path) -> tuple[str | None, str | None]:
    """HEAD's commit (None on an unborn branch) and branch (None when detached), as
    :func:`read_head` has them, from one git command."""
    done = gitcmd.run(root, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD", check=False)
    if done.returncode != 0:  # an unborn branch has no commit to name
        return None, current_branch(root)
    commit, ref = os.fsdecode(done.stdout).split()
    return commit, ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def current_branch(root: Path) -> str | None:
    """The branch HEAD is on, None when it is detached. (Not ``--short``: next to a tag of
    the same name, that answers ``heads/main``.)"""
    ref = gitcmd.maybe(root, "symbolic-ref", "-q", "HEAD") or ""
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def repo_state(root: Path, selection: Selection | None = None) -> RepoState:
    selection = selection or select(root)
    head = read_head(root)
    _, tree, kept = staged_and_snapshot(root, selection, write_blobs=False)
    return RepoState(head.commit, head.branch, head.tree, tree, kept)


def read_marker(root: Path) -> dict[str, Any]:
    """The last mirror's record in ``.git/ocm-mirror.json``; {} when missing or unreadable."""
    return _read_record(root / ".git" / MARKER_NAME)


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# A push's marker record, noted as its upload starts and dropped once its answer is in. When
# the answer is lost (the link dropped, ``ocm`` killed) after the Manager switched, this
# checkout's marker still says the state before: the Manager's copy, which is this push,
# would read as work of the Manager's own ("both sides changed"). The next transfer asks the
# Manager what it received last and, when that is this push, records it then.
PENDING_NAME = "ocm-mirror-pending.json"


def note_pending(root: Path, record: Mapping[str, Any]) -> None:
    """Not synced to disk: a note lost to a crash only brings that refusal back."""
    with contextlib.suppress(OSError):
        (root / ".git" / PENDING_NAME).write_text(json.dumps(dict(record)), encoding="utf-8")


def read_pending(root: Path) -> dict[str, Any]:
    return _read_record(root / ".git" / PENDING_NAME)


def drop_pending(root: Path) -> None:
    with contextlib.suppress(OSError):
        (root / ".git" / PENDING_NAME).unlink(missing_ok=True)


def write_marker(root: Path, record: Mapping[str, Any], *, staged_in: Path | None = None) -> Path:
    """Write the record of the state a transfer left (or sent), and return its file.
    ``staged_in``: into that folder on the repo's disk instead, for :func:`place_marker` to
    rename into place once the transfer is done."""
    from ocm.fsutil import atomic_write_text

    data = {**record, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = (staged_in or root / ".git") / MARKER_NAME
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def place_marker(root: Path, staged: Path) -> None:
    os.replace(staged, root / ".git" / MARKER_NAME)


def at_risk(state: RepoState, known: set[str | None]) -> bool:
    """Whether the work tree holds changes that exist nowhere else (see the module doc)."""
    if not state.dirty:
        return False
    return state.snapshot not in known
