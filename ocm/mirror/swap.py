"""Switching the receiver's work tree to the staged one, file by file, with a way back.

What "atomic" means here, precisely:

* Nothing in the work tree changes until the whole pack has been received and checked and
  the changed files written to staging: a failure or crash before that leaves the tree as
  it was.
* The switch itself is one pass of renames within one filesystem. Every file is replaced
  with a single ``rename`` (readers see the old or the new file, never a mix or a missing
  file), and files that stay the same are not touched at all (their mtimes survive).
* Before the pass, the plan is written (and fsynced) to the staging directory, and every
  file that is replaced or deleted is first kept there (a hard link, or a rename). If the
  pass fails, it is undone at once; if the process dies during it, the next start undoes it
  from the plan (:func:`rollback`). So the tree ends as entirely old or entirely new.
* That undo destroys no file it did not put there: between the crash and the next start an
  editor may have saved over a file the switch wrote, or created one where it deleted one
  (git's index stays locked, an editor's save does not). Those are the user's: the plan
  records what each renamed file was (inode, mtime, size: a rename keeps all three, a save
  changes at least one), and one that differs is moved under ``.git/ocm-kept/``.
* The repo root directory itself is never renamed: shells and agent sessions with their
  working directory inside it keep working. Files the receiver ignores or excludes (a
  ``node_modules``, a ``.venv``, build output) are simply not part of the plan.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import json
import os
import stat
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from ocm.mirror.errors import Blocked, NameClash, NameNotTaken

PLAN = "plan.json"
COMMITTED = "committed"
# The key under which a file system takes two names for one (see name_folding).
NameKey = Callable[[str], str]
# Under ``.git``: files an undo found changed by the user since the switch put them there.
KEPT = "ocm-kept"

# What a staged file is, kept across its rename into place: (inode, mtime in ns, size).
Identity = tuple[int, int, int]


class Plan:
    """Every rename of a switch, in order, and what it changes."""

    def __init__(self, ops: list[tuple[str, str]] | None = None) -> None:
        self.ops: list[tuple[str, str]] = ops if ops is not None else []
        # Receiver files that git ignores there but the sender sends: overwriting loses them.
        self.clobbered_ignored: list[str] = []
        self.changed = 0
        self.deleted = 0
        # The staged file each "new" and "rep" renames into place, as :func:`identity` says.
        self.ids: dict[str, Identity] = {}


def identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _kind(path: str | Path) -> str | None:
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(mode):
        return "dir"
    return "link" if stat.S_ISLNK(mode) else "file"


def same(old: str | Path, new: str | Path, new_st: os.stat_result | None = None) -> bool:
    """Whether ``old`` already is what ``new`` is (type, target, exec bit and content);
    ``new_st``: ``new``'s lstat, when known."""
    old_st, new_st = os.lstat(old), new_st or os.lstat(new)
    if stat.S_IFMT(old_st.st_mode) != stat.S_IFMT(new_st.st_mode):
        return False
    if stat.S_ISLNK(old_st.st_mode):
        return os.readlink(old) == os.readlink(new)
    if not stat.S_ISREG(old_st.st_mode):
        return False
    if (old_st.st_mode & stat.S_IXUSR) != (new_st.st_mode & stat.S_IXUSR):
        return False
    return old_st.st_size == new_st.st_size and filecmp.cmp(old, new, shallow=False)


def walk_files(top: Path) -> list[str]:
    """Files and symlinks under ``top`` (relative, ``/``-separated), minus ``.git/``."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        if not prefix:
            dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                found.append(prefix + name)
        found.extend(prefix + name for name in filenames)
    return found


def name_folding(folder: Path) -> NameKey | None:
    """How the file system holding ``folder`` tells names apart, when not byte by byte: the
    key under which it takes two names for one. macOS takes names that differ only in case
    for one, and only in how an accented letter is encoded (``é`` as one code point, or as
    ``e`` and a combining accent: Unicode's NFC and NFD); Windows the first; Linux neither
    (None). A folder is asked, as git asks when it sets ``core.ignorecase`` and
    ``core.precomposeunicode``, rather than git, as a checkout may have moved since."""
    top = os.fsencode(folder)  # bytes: whatever the locale, the names are these UTF-8 ones
    probe = top + b"/fold-probe-\xc3\xa9"  # "é" as one code point
    try:
        os.mkdir(probe)
    except OSError:
        return None  # no room even for this: the transfer fails soon, saying so
    try:
        case = os.path.lexists(top + b"/FOLD-PROBE-\xc3\xa9")
        encoding = os.path.lexists(top + b"/fold-probe-e\xcc\x81")  # "e" and an accent
    finally:
        os.rmdir(probe)
    if case:
        return folded_name if encoding else str.casefold
    return _canonical if encoding else None


# Keys: Unicode's full case folding (ß is ss) takes more names for one than a file system
# may, so a clash is refused where one might not have been, never missed.
def _canonical(name: str) -> str:
    return unicodedata.normalize("NFD", name)


def folded_name(name: str) -> str:
    """``name`` as a Mac's disk compares names: regardless of case and of Unicode form."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def refuse_name_clashes(
    incoming: list[str], doomed: list[str], current: list[str], side: str, key: NameKey
) -> None:
    """On a file system that takes names differing under ``key`` for one: raise NameClash
    when an incoming file's name and another the tree would hold (one it keeps, or another
    incoming one) are one there. Asked before anything is written, even to staging, where
    the two would clash as well."""
    gone = set(doomed)
    held = {key(name): name for name in current if name not in gone}
    for name in incoming:
        other = held.setdefault(key(name), name)
        if other != name:
            first, second = sorted((other, name))
            raise NameClash(
                f"{side} is on a file system that takes {shown_apart(first, second)} for one "
                f"file ({_how_they_differ(first, second)}), and the incoming snapshot holds "
                "both; nothing was changed",
                "rename one of them where the snapshot came from, then run the command again",
            )


def refuse_names_not_taken(work: Path, root: Path, incoming: list[str], side: str) -> None:
    """Raise NameNotTaken when the file system holding the staging folder ``work`` (and the
    work tree ``root``) would not take an incoming name: one longer than it takes (Linux
    takes 255 bytes, a Mac 255 UTF-16 units: 100 Chinese characters are 300 bytes), one
    that is not UTF-8 (git and Linux take any bytes, a Mac's disk refuses them; such a name
    holds the lone surrogates of surrogateescape), or a path longer than it takes with the
    folder it is written into. Asked before anything is written, rather than fail on a
    staging path. A suspect name is tried there (a ``mkdir``): a Mac's NAME_MAX says 255
    where its disk takes more bytes, so only the disk's answer is sure."""
    top = os.fsencode(work)
    name_max, path_max = os.pathconf(top, "PC_NAME_MAX"), os.pathconf(top, "PC_PATH_MAX")
    # Files are written under work/new, then renamed into root: the longer of the two.
    prefix = max(len(top) + len(b"/new"), len(os.fsencode(root))) + 1
    taken: set[bytes] = set()  # a folder's long name, asked once for all its files
    for path in incoming:
        if path.isascii() and len(path) <= name_max and prefix + len(path) < path_max:
            continue  # the usual path: nothing to ask
        raw = path.encode("utf-8", "surrogateescape")
        if prefix + len(raw) >= path_max:
            raise NameNotTaken(
                f"{side} is on a file system that takes paths of up to {path_max - 1} bytes, "
                f"and the incoming snapshot holds one of {len(raw)} ({_shortened(path)}), "
                f"{prefix + len(raw)} with the folder it is written into; nothing was changed",
                NOT_TAKEN_TODO,
            )
        for name in raw.split(b"/"):
            if name in taken or (len(name) <= name_max and _is_utf8(name)):
                continue
            refused = _refuses(top, name)
            if refused == errno.ENAMETOOLONG:
                raise NameNotTaken(
                    f"{side} is on a file system that takes names of up to {name_max} "
                    f"bytes, and the incoming snapshot holds one of {len(name)} "
                    f"({_shortened(path)}); nothing was changed",
                    NOT_TAKEN_TODO,
                )
            if refused is not None:
                raise NameNotTaken(
                    f"{side} is on a file system that takes only UTF-8 names, and the "
                    f"incoming snapshot holds the name {raw!r}, which is not; nothing was "
                    "changed",
                    NOT_TAKEN_TODO,
                )
            taken.add(name)


NOT_TAKEN_TODO = "rename it where the snapshot came from, then run the command again"


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _refuses(top: bytes, name: bytes) -> int | None:
    """The errno with which the folder ``top`` refuses an entry called ``name`` for its
    length or its bytes, or None when it takes it (or fails otherwise: writing the files
    then says how)."""
    probe = top + b"/" + name
    try:
        os.mkdir(probe)
    except OSError as exc:
        return exc.errno if exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL) else None
    os.rmdir(probe)
    return None


def _shortened(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:40]}…{path[-30:]}"


def shown_apart(first: str, second: str) -> str:
    """Two names for a message ("A and B"), in code points when they look the same."""
    if _canonical(first) == _canonical(second):
        return f"{ascii(first)} and {ascii(second)}"
    return f"{first} and {second}"


def _how_they_differ(first: str, second: str) -> str:
    if first.casefold() == second.casefold():
        return "their names differ only in case"
    encoded = "in how an accented letter is encoded, as one code point or two"
    if _canonical(first) == _canonical(second):
        return f"their names differ only {encoded}"
    return f"their names differ only in case and {encoded}"


def make_plan(
    root: Path,
    new: Path,
    incoming: list[str],
    doomed: list[str],
    current: list[str],
    side: str,
    *,
    folded: NameKey | None = None,
) -> Plan:
    """Decide every rename; refuse (409) when an incoming path is blocked by kept files.

    ``incoming`` are the files written under ``new`` (what the receiver lacks or has
    otherwise), ``doomed`` the receiver's files the sender's tree does not hold. ``current``
    is the receiver's own selection (what it would send): those are the files the sender's
    tree replaces. Everything else on the receiver is kept. ``side`` names the receiver.
    ``folded``: the key under which its file system takes names for one (:func:`name_folding`):
    a doomed ``README.md`` is what an incoming ``readme.md`` finds there until the deletions,
    which come first.
    """
    # Plain strings, not Paths: three Path joins per file were 0.4 s of a 21,000-file switch.
    top, staged = os.fspath(root), os.fspath(new)
    plan = Plan()
    gone_as_compared = {folded(name) for name in doomed} if folded else set(doomed)

    def going(name: str) -> bool:
        """Whether ``name`` is, as the file system compares names, a doomed file."""
        return (folded(name) if folded else name) in gone_as_compared

    plan.ops.extend(("del", name) for name in doomed)
    plan.deleted = len(doomed)
    made: set[str] = set()
    removed_dirs: set[str] = set()
    blocked: list[str] = []
    current_set = set(current)
    for name in incoming:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in made:
                continue
            kind = _kind(f"{top}/{parent}")
            if kind == "dir":
                continue
            if kind is not None and not going(parent):
                blocked.append(parent)
                break
            plan.ops.append(("mkdir", parent))
            made.add(parent)
        target, source = f"{top}/{name}", f"{staged}/{name}"
        kind = _kind(target)
        staged_st = os.lstat(source)  # the one lstat of it: same() takes it too
        if kind is None or name in made or (folded and name not in current_set and going(name)):
            plan.ops.append(("new", name))
        elif kind == "dir":
            if any(True for _ in _kept_inside(Path(target), name, going)):
                blocked.append(name)
                continue
            plan.ops.append(("rmdirs", name))
            removed_dirs.add(name)
            plan.ops.append(("new", name))
        elif not same(target, source, staged_st):
            if name not in current_set:
                plan.clobbered_ignored.append(name)
            plan.ops.append(("rep", name))
        else:
            continue
        plan.ids[name] = identity(staged_st)
        plan.changed += 1
    if blocked:
        raise Blocked(
            f"{side} has files it ignores in {blocked[0]}, which an incoming file would "
            "replace; nothing was changed",
            f"move {blocked[0]} away there (`--force` does not help: no snapshot holds "
            "ignored files), then run the command again",
        )
    return plan


def _kept_inside(directory: Path, name: str, going: Callable[[str], bool]) -> Iterator[str]:
    for rel in walk_files(directory):
        if not going(f"{name}/{rel}"):
            yield rel


def write_plan(work: Path, root: Path, plan: Plan, refs: dict[str, str | None]) -> None:
    """Record the ops and the refs to restore before anything is touched (fsynced).

    Written aside and renamed into place: a plan there is a whole one. One that could not be
    written (a full disk) left a transfer that looked interrupted, whose staged files were
    kept until the next start, on the disk that had no room."""
    path = work / PLAN
    written = work / f"{PLAN}.new"
    with open(written, "w", encoding="utf-8") as handle:
        record = {"root": str(root), "ops": plan.ops, "refs": refs, "ids": plan.ids}
        handle.write(json.dumps(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(written, path)


def _keep(top: str, old: str, name: str, *, link: bool) -> None:
    """Move (or hard-link) ``top/name`` to ``old/name`` so it can be put back."""
    os.makedirs(os.path.dirname(f"{old}/{name}"), exist_ok=True)
    if link:
        try:
            os.link(f"{top}/{name}", f"{old}/{name}", follow_symlinks=False)
            return
        except OSError:
            pass  # no hard links on this filesystem: the file is briefly absent instead
    os.rename(f"{top}/{name}", f"{old}/{name}")


def apply(work: Path, root: Path, plan: Plan) -> None:
    """Run the plan; on any error undo what was done and re-raise."""
    top, new, old = os.fspath(root), os.fspath(work / "new"), os.fspath(work / "old")
    os.makedirs(old, exist_ok=True)
    try:
        for kind, name in plan.ops:
            if kind == "del":
                _keep(top, old, name, link=False)
            elif kind == "rmdirs":
                _remove_empty_tree(root / name)
            elif kind == "mkdir":
                os.mkdir(f"{top}/{name}")
            elif kind == "rep":
                _keep(top, old, name, link=True)
                os.replace(f"{new}/{name}", f"{top}/{name}")
            elif kind == "new":
                os.replace(f"{new}/{name}", f"{top}/{name}")
    except BaseException:
        rollback(work, root, plan.ops, plan.ids)
        raise


def _remove_empty_tree(directory: Path) -> None:
    for dirpath, _dirs, _files in sorted(os.walk(directory), key=lambda e: -len(e[0])):
        os.rmdir(dirpath)


def rollback(
    work: Path, root: Path, ops: list[tuple[str, str]], ids: Mapping[str, Identity] | None = None
) -> Path | None:
    """Undo the ops that happened, newest first, judging each by what is on disk.

    ``ids``: what each "new" and "rep" renamed into place (a plan written before they were
    recorded has none: its files are taken as the switch left them). A file there that is
    not that one, or one where a "del" deleted one, the user made since: it is moved into a
    fresh folder under ``.git/ocm-kept``, returned (None: nothing was moved).
    """
    new, old = work / "new", work / "old"
    aside = _Aside(root)
    for kind, name in reversed(ops):
        with contextlib.suppress(OSError):
            target = root / name
            if kind == "new":
                if not os.path.lexists(new / name) and os.path.lexists(target):
                    if ids is not None and not _is(target, ids.get(name)):
                        aside.move(name)
                    elif _kind(target) == "dir":
                        os.rmdir(target)
                    else:
                        os.unlink(target)
            elif kind in ("rep", "del"):
                if os.path.lexists(old / name):
                    if os.path.lexists(target) and _made_since(kind, root, old, name, ids):
                        aside.move(name)
                    os.replace(old / name, target)
            elif kind == "mkdir":
                if _kind(root / name) == "dir" and not os.listdir(root / name):
                    os.rmdir(root / name)
            elif kind == "rmdirs":
                (root / name).mkdir(parents=True, exist_ok=True)
    return aside.folder


def _is(path: Path, recorded: Identity | None) -> bool:
    return recorded is not None and identity(os.lstat(path)) == recorded


def _made_since(
    kind: str, root: Path, old: Path, name: str, ids: Mapping[str, Identity] | None
) -> bool:
    """Whether ``root/name``, where a "rep" or "del" ran, is a file the user made since."""
    target = root / name
    a, b = os.lstat(target), os.lstat(old / name)
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        return False  # the old file, hard-linked: the process died before the rename
    # A "del" left nothing there; a "rep" the file it recorded.
    return kind == "del" or (ids is not None and not _is(target, ids.get(name)))


class _Aside:
    """A folder for the user's files that an undo would else destroy, made at first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder: Path | None = None

    def move(self, name: str) -> None:
        if self.folder is None:
            base = self.root / ".git" / KEPT
            base.mkdir(exist_ok=True)
            when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            for n in range(1, 1000):  # two undos in one second each get their own folder
                folder = base / (when if n == 1 else f"{when}-{n}")
                with contextlib.suppress(FileExistsError):
                    folder.mkdir()
                    self.folder = folder
                    break
            else:
                raise FileExistsError(base)
        (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.root / name, self.folder / name)


def prune_empty_dirs(root: Path, deleted: list[str]) -> None:
    """Remove directories emptied by deletions (as git does), never the root."""
    candidates: set[str] = set()
    for name in deleted:
        parts = name.split("/")[:-1]
        while parts:
            candidates.add("/".join(parts))
            parts.pop()
    for name in sorted(candidates, key=lambda n: -n.count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(root / name)  # fails (and is skipped) when not empty


def make_submodule_dirs(root: Path, gitlinks: list[str]) -> None:
    """An empty folder for each submodule link that has none, as ``git checkout`` leaves for
    a submodule it does not check out: without it git reads the submodule as deleted (an
    agent's ``git commit -a`` would commit that), and so would the next transfer. Never
    through a symlink or over a file."""
    for name in gitlinks:
        path = root
        for part in name.split("/"):
            path = path / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            if not stat.S_ISDIR(os.lstat(path).st_mode):  # a symlink or a file: leave it
                break


class Written(NamedTuple):
    """A plan as :func:`write_plan` left it; ``ids`` is None in one written before them."""

    root: Path
    ops: list[tuple[str, str]]
    refs: dict[str, str | None]
    ids: dict[str, Identity] | None


def load_plan(work: Path) -> Written | None:
    try:
        data = json.loads((work / PLAN).read_text(encoding="utf-8"))
        ops = [(str(kind), str(name)) for kind, name in data["ops"]]
        ids = data.get("ids")
        if ids is not None:
            ids = {str(name): (int(a), int(b), int(c)) for name, (a, b, c) in ids.items()}
        return Written(Path(data["root"]), ops, dict(data.get("refs") or {}), ids)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
