"""What an incoming snapshot may hold, checked before anything in the repository changes.

``git index-pack --strict`` has already run fsck on every object in the pack and found
every object they link to. This adds what fsck does not look at, on the snapshot's trees
(wherever their objects came from): no path leaves the work tree or enters a ``.git``, no
symlink points outside the repo or has a path written through it (case-insensitively, as
a Mac's disk would see it), and the files fit the limits.

Only what differs from the receiver's own snapshot of its work tree is looked at (git
compares the two trees): every other entry is a file the receiver already has, as it is,
and the switch leaves it alone. So a one-file transfer checks one path, not 20,000.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ocm.mirror import gitcmd
from ocm.mirror.errors import BadPack, TooLarge
from ocm.mirror.gitcmd import ABSENT, Change
from ocm.mirror.pack import Limits
from ocm.mirror.select import Selection
from ocm.mirror.snapshot import Snapshot
from ocm.mirror.swap import folded_name, shown_apart

SYMLINK, GITLINK = "120000", "160000"
# Names git itself treats as ".git" on some filesystem (fsck's HFS and NTFS rules, simplified).
_DOTGIT = {".git", "git~1"}


class Entry(NamedTuple):  # a NamedTuple: 20,000 of them are made per transfer, 3x faster
    mode: str
    oid: str
    path: str


class Base(NamedTuple):
    """A tree the receiver already holds (the last snapshot it received, or sent), with the
    bytes its files take: an incoming snapshot is then sized by what it changes."""

    tree: str
    total: int


# A marker's record of a tree its side sent (the Manager's, after a pull), with the bytes
# its files take.
SIZED_KEY = "sized"


def base_of(marker: Mapping[str, Any]) -> Base | None:
    """The tree a side's marker says it last sent (:data:`SIZED_KEY`), or else last pushed or
    received, with the bytes its files take, if recorded."""
    sent = marker.get(SIZED_KEY)
    tree, total = (
        (sent.get("tree"), sent.get("bytes"))
        if isinstance(sent, dict)
        else (marker.get("snapshot"), marker.get("bytes"))
    )
    if gitcmd.is_oid(tree) and isinstance(total, int) and total >= 0:
        return Base(str(tree), total)
    return None


class Incoming(NamedTuple):
    """What a checked snapshot does to the receiver's work tree."""

    to_write: list[Entry]  # its files that the receiver lacks or has otherwise (no gitlinks)
    gone: list[str]  # the receiver's travelling files it does not hold
    total: int  # bytes all its files take
    sizes: dict[str, int]  # the size of blobs, where already asked
    gitlinks: list[str]  # its submodule links that the receiver lacks or has otherwise


def _ls_tree(root: Path, env: dict[str, str], tree: str) -> list[Entry]:
    # Without -l: sizes would make git read every blob's header (1 s on 20,000 files).
    done = gitcmd.run(root, "ls-tree", "-r", "-z", "--full-tree", tree, env=env)
    entries = []
    for record in gitcmd.split_z(done.stdout):
        info, _, path = record.partition("\t")
        mode, _kind, oid = info.split()
        entries.append(Entry(mode, oid, path))
    return entries


def sizes(root: Path, env: dict[str, str], oids: Iterable[str]) -> dict[str, int]:
    """The size of each blob in ``oids`` (one git call; missing objects count as 0)."""
    wanted = sorted(set(oids))
    if not wanted:
        return {}
    done = gitcmd.run(
        root,
        "cat-file",
        "--batch-check=%(objectname) %(objectsize)",
        input="".join(f"{oid}\n" for oid in wanted).encode(),
        env=env,
    )
    found: dict[str, int] = {}
    for line in done.stdout.decode().splitlines():
        oid, _, size = line.partition(" ")
        found[oid] = int(size) if size.isdigit() else 0
    return found


def differences(root: Path, env: dict[str, str], old: str, new: str) -> list[Change] | None:
    """What differs from tree ``old`` to tree ``new`` (None: git cannot compare the two)."""
    return gitcmd.raw_diff(root, env, "diff-tree", "-r", old, new)


class Changes(NamedTuple):
    """The blobs that left and came between two trees."""

    gone: list[str]
    came: list[str]


def changes(root: Path, env: dict[str, str], old: str, new: str) -> Changes | None:
    """The blobs that differ from tree ``old`` to tree ``new`` (None: git cannot compare)."""
    found = differences(root, env, old, new)
    return None if found is None else _blobs(found)


def _blobs(found: list[Change]) -> Changes:
    gone = [c.old_oid for c in found if c.old_mode not in (ABSENT, GITLINK)]
    return Changes(gone, [c.new_oid for c in found if c.new_mode not in (ABSENT, GITLINK)])


def sized(
    root: Path, env: dict[str, str], base: Base, found: Changes
) -> tuple[int, dict[str, int]]:
    """The bytes the files of a tree take that differs from ``base`` by ``found``, and the
    size of each blob that came."""
    known = sizes(root, env, found.gone + found.came)
    total = (
        base.total
        - sum(known.get(oid, 0) for oid in found.gone)
        + sum(known.get(oid, 0) for oid in found.came)
    )
    return total, {oid: known.get(oid, 0) for oid in found.came}


def _name_problem(name: str) -> str | None:
    """Why one path component may not be written into a work tree, or None."""
    if name in ("", ".", ".."):
        return "a path with '..' or an empty name"
    if "\0" in name:
        return "a path with a NUL"
    # A backslash is a character of a file name here (git and POSIX allow it) and a folder
    # separator on Windows: what would be a '..' or a .git there is refused as well.
    for part in name.split("\\"):
        if part in (".", ".."):
            return "a path with '..' or an empty name"
        if part.lower().rstrip(". ") in _DOTGIT:
            return "a nested .git"
    return None


def _check_paths(paths: list[str], what: str) -> None:
    """Refuse the first path with a bad component. Each distinct component is judged once,
    from one split of all the paths together (a tree of 20,000 files has a few thousand
    directory names; a split per path was 3x slower)."""
    joined = "/".join(paths)
    names = set(joined.split("/"))
    if "\\" not in joined and "\0" not in joined:  # then only these first letters can be bad
        names = {name for name in names if name[:1] in ("", ".", "g", "G")}
    bad = {name for name in names if _name_problem(name)}
    for path in paths if bad else ():
        for name in path.split("/"):
            if name in bad:
                raise BadPack(f"{what} holds {_name_problem(name)} ({path!r})")


class Weighed(NamedTuple):
    """What :func:`weigh` found: the bytes a snapshot's files take, and how it knows."""

    total: int
    sizes: dict[str, int]  # the size of blobs that came (from ``base``), or of every blob
    base: str | None  # the tree ``found`` compares the snapshot with
    found: list[Change] | None  # what differs from ``base`` (None: every blob was sized)


def weigh(
    root: Path, env: dict[str, str], snap: Snapshot, limits: Limits, base: Base | None = None
) -> Weighed:
    """What needs nothing of the receiver's own state, checked while it looks at its work
    tree: the paths only the snapshot's index holds, and the bytes its files take (from
    ``base``, a tree whose bytes are recorded, and the blobs that differ from it, else from
    every blob), within the limit. ``env`` lets git see the quarantined pack in front of
    the repository's own objects."""
    # The index's paths are the tree's but for what git diff-tree says differs.
    differing = gitcmd.differing_paths(root, snap.tree, snap.index_tree, env) or []
    _check_paths(differing, "the snapshot's index")
    found = differences(root, env, base.tree, snap.tree) if base is not None else None
    if found is not None and base is not None:  # (found implies base)
        weighed = Weighed(*sized(root, env, base, _blobs(found)), base.tree, found)
    else:  # no record of a base, or git cannot compare with it: every blob
        files = [entry for entry in _ls_tree(root, env, snap.tree) if entry.mode != GITLINK]
        known = sizes(root, env, (entry.oid for entry in files))
        weighed = Weighed(sum(known.get(entry.oid, 0) for entry in files), known, None, None)
    if weighed.total > limits.max_bytes:
        # All of them, not only those that changed: the limit bounds what the work tree
        # holds after the transfer, which a run of small transfers could not get past.
        raise TooLarge(
            f"the snapshot's files take {weighed.total} bytes in all (unchanged ones included),"
            f" more than the receiver accepts ({limits.max_bytes})"
        )
    return weighed


def check(
    root: Path,
    env: dict[str, str],
    snap: Snapshot,
    weighed: Weighed,
    own: Selection,
    own_tree: str | None,
) -> Incoming:
    """Refuse a snapshot that is incomplete or hostile; say what it changes here.

    ``own`` and ``own_tree``: the receiver's look at its work tree and the tree of that
    (None: unknown, then every entry is checked and written); ``weighed``: :func:`weigh`'s
    answer, whose comparison serves when its base is that tree. That every object is there
    was checked by ``index-pack --strict``, which follows each link of each object in the
    pack (a walk of the whole history here cost 0.25 s).
    """
    if own_tree is None:
        found = None
    elif own_tree == weighed.base:
        found = weighed.found
    else:
        found = differences(root, env, own_tree, snap.tree)
    if found is None:  # all of the snapshot is new here
        came = _ls_tree(root, env, snap.tree)
        listed = {entry.path for entry in came}
        gone = [name for name in own.files if name not in listed]
    else:
        came = [Entry(c.new_mode, c.new_oid, c.path) for c in found if c.new_mode != ABSENT]
        current = set(own.files)
        gone = [c.path for c in found if c.new_mode in (ABSENT, GITLINK) and c.path in current]
    _check_paths([entry.path for entry in came], "the snapshot")
    gitlinks = [entry for entry in came if entry.mode == GITLINK]
    _check_gitlinks(root, env, snap.tree, gitlinks)
    files = [entry for entry in came if entry.mode != GITLINK]
    changed = {c.path for c in found} if found is not None else None
    _check_links(root, env, snap.tree, files, own.links, changed)
    return Incoming(files, gone, weighed.total, weighed.sizes, [entry.path for entry in gitlinks])


def _check_gitlinks(root: Path, env: dict[str, str], tree: str, gitlinks: list[Entry]) -> None:
    """Each submodule link is one as its tree spells it. Git reads any mode it has no file
    kind for (a device's, say) as a submodule link, in ``ls-tree`` and ``diff-tree`` alike,
    and ``index-pack --strict`` lets it through as a warning: only the raw tree shows it."""
    if not gitlinks:  # the usual case: no git call
        return
    parents = sorted({entry.path.rpartition("/")[0] for entry in gitlinks})
    raw_trees = gitcmd.read_objects(root, [f"{tree}:{d}" if d else tree for d in parents], env)
    modes: dict[str, bytes] = {}
    for parent, raw in zip(parents, raw_trees, strict=True):
        data = raw.content if raw else b""
        width = len(raw.oid) // 2 if raw else 0  # the id's bytes: 20 (sha1) or 32
        pos = 0
        while pos < len(data):
            space, nul = data.index(b" ", pos), data.index(b"\0", pos)
            name = os.fsdecode(data[space + 1 : nul])
            modes[f"{parent}/{name}" if parent else name] = data[pos:space]
            pos = nul + 1 + width
    for entry in gitlinks:
        if modes.get(entry.path) != GITLINK.encode():
            mode = modes.get(entry.path, b"?").decode("ascii", "replace")
            raise BadPack(f"the snapshot holds {entry.path!r} with mode {mode}")


def _check_links(
    root: Path,
    env: dict[str, str],
    tree: str,
    came: list[Entry],
    own_links: set[str],
    changed: set[str] | None,
) -> None:
    """The incoming symlinks can be made as they are, and no incoming path is written
    through one. Where a symlink points is its own business, inside the repo or not, as in
    git: the switch never follows one (it renames, and looks with ``lstat``), and a path
    written through one is what could reach outside. ``changed``: the paths that differ
    from the receiver's tree (None: all of them came), whose other symlinks
    (``own_links``) stay as they are."""
    links = [entry for entry in came if entry.mode == SYMLINK]
    targets = _link_targets(root, env, links)
    path_max = os.pathconf(root, "PC_PATH_MAX") if links else 0
    for entry in links:
        target = targets[entry.path]
        if "\0" in target or not target:  # symlink(2) would make another target, or none
            raise BadPack(
                f"the snapshot holds a symlink whose target no file system takes ({entry.path})"
            )
        length = len(os.fsencode(target))
        if length >= path_max:  # Linux takes 4,095 bytes, a Mac 1,023
            raise BadPack(
                f"the snapshot holds a symlink whose target is {length} bytes long "
                f"({entry.path}), and the receiving file system takes up to {path_max - 1}",
                "point it somewhere nearer where the snapshot came from, then run the command "
                "again",
            )
    if changed is None or links:
        # Every path against every symlink: a new symlink may have paths under it that did
        # not change (rare), and with nothing to compare with, everything came.
        listing = came if changed is None else _ls_tree(root, env, tree)
        paths = [entry.path for entry in listing if entry.mode != GITLINK]
        links_by = {
            folded_name(entry.path): entry.path for entry in listing if entry.mode == SYMLINK
        }
    else:  # only the paths that came can lie under the receiver's unchanged symlinks
        paths = [entry.path for entry in came]
        links_by = {folded_name(name): name for name in own_links if name not in changed}
    if not links_by:
        return
    # Compared as a Mac's disk would write them, on every system: `D/x`, or `dé/x` with `é`
    # in the other Unicode form, goes through the symlink `d` or `dé` there.
    for path in paths:
        parts = folded_name(path).split("/")
        for depth in range(1, len(parts)):
            link = links_by.get("/".join(parts[:depth]))
            if link is not None:
                folder = "/".join(path.split("/")[:depth])
                why = f" (a Mac's disk takes {shown_apart(folder, link)} for one name)"
                raise BadPack(
                    f"the snapshot writes {path} through the symlink {link}"
                    + (why if folder != link else ""),
                    "rename that folder or the symlink, then run the command again",
                )


def _link_targets(root: Path, env: dict[str, str], links: list[Entry]) -> dict[str, str]:
    found = gitcmd.read_objects(root, [entry.oid for entry in links], env=env) if links else []
    return {
        entry.path: os.fsdecode(got.content) if got else ""
        for entry, got in zip(links, found, strict=True)
    }
