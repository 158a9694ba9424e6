"""Seeded random edits, then a push or a pull: the receiver must be the sender's exact copy.

One side edits (files written, deleted, renamed, made executable or not, replaced by
symlinks inside and outside the repo or by folders, staged, committed, a branch switched,
the index reset, ignored files and empty folders made), then the transfer that takes its
work to the other side. After each: HEAD, branch, the staged state and every file that
travels are the same on both sides, the sender is as it was, and the receiver's ignored
files are as they were. Seeded, so a failure replays; the step and the edits leading to it
are in the message.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

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
            git(root, "rm", "-q", "-r", "--cached", "--ignore-unmatch", "--", name)
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


@pytest.mark.parametrize("seed", [1, 2])
def test_random_edits_arrive_exactly_and_lose_nothing(ocm: Cli, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    laptop = tmp_path / "laptop" / "proj"
    laptop.mkdir(parents=True)
    git(laptop, "init", "-q", "-b", "main")
    (laptop / ".gitignore").write_text("*.log\nbuild/\n")
    (laptop / "a.txt").write_text("a\n")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-q", "-m", "first")
    created = ocm(laptop, "push", "--create", "--yes")
    assert created.returncode == 0, created.stderr
    manager_copy = ocm.manager.data_dir / "repos" / "proj"
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
