"""Hand-made git objects for the refusal tests: trees git itself would never write.

``git hash-object --literally`` stores any bytes as a tree, so a test can build exactly the
snapshot an attacker would send, and ``git pack-objects`` packs it like any other.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.git import git

TREE = "40000"


@dataclass(frozen=True)
class Item:
    mode: str
    name: str
    oid: str


def _run(root: Path, *args: str, data: bytes = b"") -> str:
    return (
        subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


def blob(root: Path, data: bytes) -> str:
    return _run(root, "hash-object", "-w", "--stdin", data=data)


def tree(root: Path, items: list[Item]) -> str:
    """A tree object with exactly ``items`` (in git's order, so only the intended check
    fires)."""
    ordered = sorted(items, key=lambda i: i.name.encode() + (b"/" if i.mode == TREE else b""))
    raw = b"".join(f"{i.mode} {i.name}".encode() + b"\0" + bytes.fromhex(i.oid) for i in ordered)
    return _run(root, "hash-object", "-t", "tree", "-w", "--literally", "--stdin", data=raw)


def files_tree(root: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    """A tree of ``files`` (nested paths allowed) and symlinks ``links`` (path: target)."""
    top: list[Item] = []
    sub_files: dict[str, dict[str, bytes]] = {}
    sub_links: dict[str, dict[str, str]] = {}
    for path, data in files.items():
        head, _, rest = path.partition("/")
        if rest:
            sub_files.setdefault(head, {})[rest] = data
        else:
            top.append(Item("100644", head, blob(root, data)))
    for path, target in (links or {}).items():
        head, _, rest = path.partition("/")
        if rest:
            sub_links.setdefault(head, {})[rest] = target
        else:
            top.append(Item("120000", head, blob(root, target.encode())))
    for name in sorted(set(sub_files) | set(sub_links)):
        top.append(Item(TREE, name, files_tree(root, sub_files.get(name, {}), sub_links.get(name))))
    return tree(root, top)


def snapshot_commit(root: Path, work_tree: str, index_tree: str | None = None) -> str:
    """A snapshot commit as ocm builds one: parents HEAD and a commit of the index."""
    head = git(root, "rev-parse", "HEAD")
    index = git(root, "commit-tree", index_tree or f"{head}^{{tree}}", "-p", head, "-m", "index")
    return git(root, "commit-tree", work_tree, "-p", head, "-p", index, "-m", "snapshot")


def pack_of(root: Path, *revs: str, thin: bool = False) -> bytes:
    args = ["pack-objects", "--revs", "--stdout", "-q"] + (["--thin"] if thin else [])
    return subprocess.run(
        ["git", *args],
        cwd=root,
        input="".join(rev + "\n" for rev in revs).encode(),
        capture_output=True,
        check=True,
    ).stdout


def pack_listed(root: Path, oids: list[str]) -> bytes:
    """A pack of exactly ``oids`` (no walking: links to absent objects stay dangling)."""
    return subprocess.run(
        ["git", "pack-objects", "--stdout", "-q"],
        cwd=root,
        input="".join(oid + "\n" for oid in oids).encode(),
        capture_output=True,
        check=True,
    ).stdout
