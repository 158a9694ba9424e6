"""What an incoming snapshot may hold, checked before anything in the repository changes.

``git index-pack --strict`` has already run fsck on every object in the pack. This adds
what fsck does not look at, on the snapshot's trees as a whole (wherever their objects
came from): every object the snapshot names is present, no path leaves the work tree or
enters a ``.git``, no symlink points outside the repo or has a later path written through
it (case-insensitively, as a Mac's disk would see it), and the files fit the limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.errors import BadPack, IncompletePack, TooLarge
from ocm.mirror.pack import Limits
from ocm.mirror.select import link_stays_inside
from ocm.mirror.snapshot import Snapshot

SYMLINK, GITLINK = "120000", "160000"
_MODES = {"100644", "100755", SYMLINK, GITLINK}
# Names git itself treats as ".git" on some filesystem (fsck's HFS and NTFS rules, simplified).
_DOTGIT = {".git", "git~1"}


@dataclass(frozen=True)
class Entry:
    mode: str
    oid: str
    size: int
    path: str


def _ls_tree(root: Path, env: dict[str, str], tree: str) -> list[Entry]:
    done = gitcmd.run(root, "ls-tree", "-r", "-l", "-z", "--full-tree", tree, env=env)
    entries = []
    for record in done.stdout.split(b"\0"):
        if not record:
            continue
        info, _, raw_path = record.partition(b"\t")
        mode, _kind, oid, size = info.decode().split()
        entries.append(Entry(mode, oid, int(size) if size.isdigit() else 0, os.fsdecode(raw_path)))
    return entries


def _name_problem(name: str) -> str | None:
    """Why one path component may not be written into a work tree, or None."""
    if name in ("", ".", ".."):
        return "a path with '..' or an empty name"
    if "\0" in name or "\\" in name:
        return "a path with a NUL or a backslash"
    if name.lower().rstrip(". ") in _DOTGIT:
        return "a nested .git"
    return None


def _check_paths(paths: list[str], what: str) -> None:
    """Refuse the first path with a bad component (each distinct component judged once:
    a tree of 20,000 files has a few thousand)."""
    judged: dict[str, str | None] = {}
    for path in paths:
        for name in path.split("/"):
            if name not in judged:
                judged[name] = _name_problem(name)
            if judged[name]:
                raise BadPack(f"{what} holds {judged[name]} ({path!r})")


def check(root: Path, env: dict[str, str], snap: Snapshot, limits: Limits) -> list[Entry]:
    """Refuse a snapshot that is incomplete or hostile; return its files (no gitlinks).

    ``env`` lets git see the quarantined pack in front of the repository's own objects.
    """
    connected = gitcmd.run(
        root,
        "rev-list",
        "--objects",
        "--quiet",
        snap.commit,
        "--not",
        "--all",
        env=env,
        check=False,
    )
    if connected.returncode != 0:
        raise IncompletePack(
            "the snapshot names objects that neither the pack nor the receiving repo has "
            f"({gitcmd.last_line(connected.stderr)})"
        )
    index_paths = gitcmd.run(
        root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", snap.index_tree, env=env
    ).stdout
    _check_paths(gitcmd.split_z(index_paths), "the snapshot's index")
    files = [e for e in _ls_tree(root, env, snap.tree) if e.mode != GITLINK]
    _check_paths([entry.path for entry in files], "the snapshot")
    links: list[Entry] = []
    for entry in files:
        if entry.mode not in _MODES:
            raise BadPack(f"the snapshot holds {entry.path!r} with mode {entry.mode}")
        if entry.mode == SYMLINK:
            links.append(entry)
    _check_links(root, env, files, links)
    total = sum(entry.size for entry in files)
    if total > limits.max_bytes:
        raise TooLarge(
            f"the snapshot's files take {total} bytes, more than the receiver accepts "
            f"({limits.max_bytes})"
        )
    return files


def _check_links(root: Path, env: dict[str, str], files: list[Entry], links: list[Entry]) -> None:
    targets = _link_targets(root, env, links)
    for entry in links:
        target = targets[entry.path]
        if "\0" in target or not link_stays_inside(entry.path, target):
            raise BadPack(
                f"the snapshot holds a symlink leaving the repo ({entry.path} -> {target})"
            )
    folded = {entry.path.lower() for entry in links}
    if not folded:
        return
    for entry in files:
        parts = entry.path.lower().split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in folded:
                raise BadPack(f"the snapshot writes {entry.path} through a symlink")


def _link_targets(root: Path, env: dict[str, str], links: list[Entry]) -> dict[str, str]:
    if not links:
        return {}
    done = gitcmd.run(
        root,
        "cat-file",
        "--batch",
        input="".join(f"{e.oid}\n" for e in links).encode(),
        env=env,
    )
    data, pos, targets = done.stdout, 0, {}
    for entry in links:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        targets[entry.path] = os.fsdecode(data[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return targets
