"""Seeded random edits, then a push or a pull: the receiver must be the sender's exact copy.

One side edits (files written, deleted, renamed, made executable or not, replaced by
symlinks inside and outside the repo or by folders, staged, committed, a branch switched,
the index reset, ignored files and empty folders made), then the transfer that takes its
work to the other side. After each: HEAD, branch, the staged state and every file that
travels are the same on both sides, the sender is as it was, and the receiver's ignored
files are as they were. Then both sides edit: a transfer either goes through (the
receiver had nothing of its own to lose) or is refused with both sides as they were, and
``--force`` then saves what it overwrites where its lines say. Seeded, so a failure
replays; the step and the edits leading to it are in the message.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from tests.mirror.helpers import tree_listing
from tests.support.git import git
from tests.support.processes import Cli

NAMES = ["a.txt", "b.txt", "c.sh", "d/e.txt", "d/f.txt", "g/h/i.txt", "sp ace.txt", "ü.txt", "x"]
IGNORED = ["x.log", "build/o", "d/y.log"]
LINK_TARGETS = ["a.txt", "d", "../a.txt", "/etc/hostname", "nowhere"]
STEPS = 25


def _clear_way(root: Path, name: str) -> Path:
    """Remove whatever is at ``name`` and any file or symlink where its folders go."""
    parts = Path(name).parts
    for depth in range(1, len(parts)):
        folder = root.joinpath(*parts[:depth])
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
    path = root / name
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _content(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.1:
        return b""
    if roll < 0.2:
        return rng.randbytes(rng.randrange(1, 300))
    return f"line {rng.randrange(1000)}\n".encode() * rng.randrange(1, 20)


def _edit(root: Path, rng: random.Random, done: list[str]) -> None:
    """One to four random edits of the work tree, index or branch at ``root``."""
    for _ in range(rng.randrange(1, 5)):
        roll, name = rng.random(), rng.choice(NAMES)
        path = root / name
        if roll < 0.35:
            _clear_way(root, name).write_bytes(_content(rng))
            done.append(f"write {name}")
        elif roll < 0.45 and (path.exists() or path.is_symlink()):
            _clear_way(root, name)
            done.append(f"remove {name}")
        elif roll < 0.52 and path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode ^ 0o111)
            done.append(f"chmod {name}")
        elif roll < 0.60:
            target = rng.choice(LINK_TARGETS)
            os.symlink(target, _clear_way(root, name))
            done.append(f"symlink {name} -> {target}")
        elif roll < 0.67:
            git(root, "add", "-A")
            done.append("add -A")
        elif roll < 0.74:
            git(root, "add", "-A")
            git(root, "commit", "-q", "--allow-empty", "-m", "work")
            done.append("commit")
        elif roll < 0.78:
            git(root, "rm", "-q", "-r", "-f", "--cached", "--ignore-unmatch", "--", name)
            done.append(f"rm --cached {name}")
        elif roll < 0.84:
            ignored = rng.choice(IGNORED)
            _clear_way(root, ignored).write_bytes(_content(rng))
            done.append(f"ignored {ignored}")
        elif roll < 0.88:
            empty = root / rng.choice(["empty", "d/empty"])
            if not any(p.is_file() or p.is_symlink() for p in (empty, *empty.parents)):
                empty.mkdir(parents=True, exist_ok=True)
                done.append(f"mkdir {empty.relative_to(root)}")
        elif roll < 0.93:
            source = rng.choice(NAMES)
            if source != name and (root / source).is_file() and not (root / source).is_symlink():
                data, mode = (root / source).read_bytes(), (root / source).stat().st_mode
                (root / source).unlink()
                moved = _clear_way(root, name)
                moved.write_bytes(data)
                moved.chmod(mode & 0o777)
                done.append(f"mv {source} {name}")
        elif roll < 0.97:
            branch = f"b{rng.randrange(3)}"
            git(root, "add", "-A")
            git(root, "commit", "-q", "--allow-empty", "-m", "before switching")
            git(root, "checkout", "-q", "-B", branch)
            done.append(f"checkout -B {branch}")
        else:
            git(root, "reset", "-q", "--mixed")
            done.append("reset --mixed")


def _state(root: Path) -> dict[str, object]:
    """What a transfer mirrors: HEAD, branch, the staged entries and the files that travel."""
    # -z: names as they are (without it git quotes ``ü.txt``, and no file has that name)
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    travelling = set(listed.split("\0"))
    files = tree_listing(root)
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "staged": git(root, "ls-files", "--stage"),
        "files": {name: files.get(name) for name in sorted(travelling - {""})},
    }


def _ignored(root: Path) -> dict[str, object]:
    files = tree_listing(root)
    return {name: files.get(name) for name in IGNORED if name in files}


def _start(ocm: Cli, tmp_path: Path) -> tuple[Path, Path]:
    """A checkout pushed with ``--create``, and the Manager's copy of it."""
    laptop = tmp_path / "laptop" / "proj"
    laptop.mkdir(parents=True)
    git(laptop, "init", "-q", "-b", "main")
    (laptop / ".gitignore").write_text("*.log\nbuild/\n")
    (laptop / "a.txt").write_text("a\n")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "first")
    created = ocm(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    return laptop, ocm.manager.data_dir / "repos" / "proj"


@pytest.mark.parametrize("seed", [1, 2])
def test_random_edits_arrive_exactly_and_lose_nothing(ocm: Cli, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    laptop, manager_copy = _start(ocm, tmp_path)
    done: list[str] = []
    for step in range(STEPS):
        command = rng.choice(["push", "pull"])
        sender, receiver = (laptop, manager_copy) if command == "push" else (manager_copy, laptop)
        kept = _ignored(receiver)
        _edit(sender, rng, done)
        done.append(command)
        sent = _state(sender)
        result = ocm(laptop, command)
        story = f"seed {seed}, step {step}: " + "; ".join(done[-12:])
        assert result.returncode == 0, f"{story}\n{result.stderr}"
        assert _state(sender) == sent, story
        assert _state(receiver) == sent, story
        assert {k: v for k, v in _ignored(receiver).items() if k in kept} == kept, story


def _files(state: dict[str, object]) -> dict[str, Any]:
    return cast(dict[str, Any], state["files"])


def _commits(root: Path, *refs: str) -> set[str]:
    return set(git(root, "rev-list", *refs).split())


def _blob(root: Path, entry: tuple[Any, ...]) -> str:
    data = entry[1].encode() if entry[0] == "link" else entry[2]
    hashed = subprocess.run(
        ["git", "hash-object", "--stdin"], cwd=root, input=data, capture_output=True, check=True
    )
    return hashed.stdout.decode().strip()


def _blobs(root: Path, *revs: str) -> set[tuple[str, str]]:
    """(path, blob) of every file in ``revs``' trees (a stash's untracked files: its ^3)."""
    found = set()
    for rev in revs:
        listed = subprocess.run(["git", "ls-tree", "-r", "-z", rev], cwd=root, capture_output=True)
        for record in listed.stdout.decode(errors="surrogateescape").split("\0"):
            if record:
                info, name = record.split("\t", 1)
                found.add((name, info.split()[2]))
    return found


@pytest.mark.parametrize("seed", [1, 3])
def test_random_edits_on_both_sides_are_refused_whole_or_kept(
    ocm: Cli, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    laptop, manager_copy = _start(ocm, tmp_path)
    synced = _files(_state(laptop))
    done: list[str] = []
    for step in range(STEPS // 2):
        edited = rng.choice([(laptop,), (manager_copy,), (laptop, manager_copy)])
        for side in edited:
            _edit(side, rng, done)
        command = rng.choice(["push", "pull"])
        sender, receiver = (laptop, manager_copy) if command == "push" else (manager_copy, laptop)
        done.append(command)
        story = f"seed {seed}, step {step}: " + "; ".join(done[-12:])
        sent, had, kept = _state(sender), _state(receiver), _ignored(receiver)
        commits = _commits(receiver, "--branches", "HEAD")
        head_blobs = _blobs(receiver, "HEAD")

        result = ocm(laptop, command)
        saved: set[tuple[str, str]] = set()
        if result.returncode != 0:
            said = result.stderr.strip().splitlines()[-1]
            assert said.startswith("ocm: ") and result.returncode == 1, f"{story}\n{said}"
            assert receiver in edited or "commit" in said, f"{story}\n{said}"
            assert (_state(sender), _state(receiver)) == (sent, had), story
            assert _ignored(receiver) == kept, story
            result = ocm(laptop, command, "--force")
            assert result.returncode == 0, f"{story}\n{result.stderr}"
            named = re.findall(r"`git (?:stash apply|checkout|branch \S+) ([^`\s]+)", result.stdout)
            saved = _blobs(receiver, *named, *(f"{rev}^3" for rev in named))
        assert _state(sender) == sent, story
        assert _state(receiver) == sent, story
        assert commits <= _commits(receiver, "--all"), story
        # Each file the receiver had is the sender's, or the last transfer's (known to both),
        # or in its HEAD commit (kept), or in what --force saved.
        for name, entry in _files(had).items():
            if entry is None or entry in (_files(sent).get(name), synced.get(name)):
                continue
            blob = _blob(receiver, entry)
            assert (name, blob) in saved | head_blobs, f"{story}\n{name} lost\n{result.stdout}"
        synced = _files(sent)
