"""The index a snapshot was built in, kept so that the next snapshot re-hashes only what
changed since.

A snapshot starts from a copy of the real index, whose stat data vouches for the files it
holds as they are. What it does not vouch for (uncommitted edits, untracked files) git
hashes every time: on a checkout with a day's uncommitted work, every push re-read all of
it. So the throw-away index of the last snapshot, whose stat data vouches for exactly
those files as they were then, is kept in ``.git/ocm-snapshot-index``, with a record of
what it was built from in ``.git/ocm-snapshot-index.json``: the staged tree, the paths
taken from the work tree, and a SHA-1 of the index file.

It is used instead of the copy only when it provably holds the same entries as that copy
for every other path: the entries of the real index that may differ from those it was
copied from (the paths where git's comparison of the staged trees then and now differs,
after a commit or an add) and the last snapshot's own paths that are no longer to be looked
at get the real index's entries back first; every other stage-0 entry of the real index is
the same as then. Anything else (a staged tree git cannot compare, a record that does not
match the file, two ocm processes writing at once) falls back to the copy, which is always
right, and keeps that instead. Racy entries stay racy: the file is copied with its
modification time, which is what git's check compares entries with.

A receiving side keeps the index its own look at the work tree was built in (only its
symlinks' blobs written), once the switch has committed: the entries whose files the
switch left alone name the incoming snapshot's blobs, which exist then, and the files it
wrote no longer match their entries' stat data, so they are read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from ocm.mirror import gitcmd

KEPT_NAME = "ocm-snapshot-index"
_RECORD_NAME = KEPT_NAME + ".json"
_REMOVE = "0 " + "0" * 40  # an --index-info line with mode 0 drops its path


def start_from_kept(
    root: Path, index_file: Path, staged: str, entries: dict[str, str], paths: list[str]
) -> bool:
    """Replace ``index_file`` (a copy of the real index, whose staged tree is ``staged``)
    with the kept index when that one holds the same entries outside ``paths``; whether it
    did. ``entries``: the real index's ``"<mode> <oid>"`` by path."""
    record = _record(root)
    kept = root / ".git" / KEPT_NAME
    if record is None or record.get("sha1") != _sha1(kept):
        return False
    then, staged_then = record.get("paths"), record.get("staged")
    if not isinstance(then, list) or not gitcmd.is_oid(staged_then):
        return False
    # What was staged then and now differs only where git's comparison says (a commit, an
    # add): those entries are taken from the real index, as the paths no longer looked at.
    moved: list[str] = []
    if staged_then != staged:
        found = gitcmd.differing_paths(root, str(staged_then), staged, check=False)
        if found is None:
            return False
        moved = found
    looked_at = set(paths)
    stale = [str(path) for path in [*then, *moved] if path not in looked_at]
    lines = [f"{entries.get(path, _REMOVE)}\t{path}" for path in dict.fromkeys(stale)]
    trial = index_file.with_name(index_file.name + ".kept")
    try:
        shutil.copy2(kept, trial)
        if lines:
            env = {"GIT_INDEX_FILE": str(trial)}
            data = b"".join(line.encode("utf-8", "surrogateescape") + b"\0" for line in lines)
            done = gitcmd.run(
                root, "update-index", "-z", "--index-info", input=data, env=env, check=False
            )
            if done.returncode != 0:
                return False
        os.replace(trial, index_file)
    except OSError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(trial)
    return True


class Kept(NamedTuple):
    """An index a snapshot was built in, held in memory until the transfer it served has
    succeeded (a failed one leaves the checkout as it was), then saved for the next one."""

    data: bytes
    mtime_ns: int  # git's racy check compares entries with the file's modification time
    staged: str
    paths: list[str]

    def __repr__(self) -> str:  # not the index's bytes in a traceback
        return f"Kept({len(self.data)} bytes, {len(self.paths)} paths, staged={self.staged})"

    def save(self, root: Path) -> None:
        if not self.paths:  # a copy of the real index, which spares the next look as much
            return
        git_dir = root / ".git"
        trial = git_dir / (KEPT_NAME + ".new")
        try:
            trial.write_bytes(self.data)
            os.utime(trial, ns=(self.mtime_ns, self.mtime_ns))
            os.replace(trial, git_dir / KEPT_NAME)
            # Another process's file in between fails this check: then neither is used.
            sha1 = hashlib.sha1(self.data, usedforsecurity=False).hexdigest()
            record = {"staged": self.staged, "paths": self.paths, "sha1": sha1}
            (git_dir / (_RECORD_NAME + ".new")).write_text(json.dumps(record))
            os.replace(git_dir / (_RECORD_NAME + ".new"), git_dir / _RECORD_NAME)
        except OSError:  # only a cache: the next snapshot starts from the real index
            with contextlib.suppress(FileNotFoundError):
                os.unlink(trial)


def taken(index_file: Path, staged: str, paths: list[str]) -> Kept | None:
    """``index_file``, the index a snapshot was just built in, to keep (None if unreadable)."""
    try:
        return Kept(index_file.read_bytes(), index_file.stat().st_mtime_ns, staged, paths)
    except OSError:
        return None


def _record(root: Path) -> dict[str, object] | None:
    try:
        record = json.loads((root / ".git" / _RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _sha1(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return None
