"""Real repos for mirror tests, and a way to compare two work trees exactly."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from ocm.mirror import receive, send
from ocm.mirror.archive import Limits
from tests.support.git import git, write_files


def tree_listing(root: Path, *, skip: tuple[str, ...] = (".git",)) -> dict[str, tuple]:
    """Every file, symlink and its content/exec bit under ``root`` (minus ``skip`` dirs)."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in skip]
        prefix = "" if rel == "." else rel + "/"
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                found[prefix + name] = ("link", os.readlink(os.path.join(dirpath, name)))
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[prefix + name] = ("link", os.readlink(path))
            else:
                found[prefix + name] = (
                    "file",
                    bool(st.st_mode & stat.S_IXUSR),
                    Path(path).read_bytes(),
                )
    return found


def rich_repo(path: Path, origin: str = "https://example.invalid/org/proj.git") -> Path:
    """A repo with the awkward cases: exec bits, links, binary, unicode, spaces, empties."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    files = {
        "README.md": "# proj\n",
        "src/app.py": "print('hi')\n",
        "bin/run.sh": "#!/bin/sh\necho run\n",
        "docs/ünïcödé name.txt": "unicode and a space\n",
        "empty.txt": "",
        ".gitignore": "*.log\n!keep.log\nbuild/\n",
        "nested/.gitignore": "secret.txt\n!not-secret.txt\n",
        "nested/not-secret.txt": "fine\n",
        "vendor/node_modules/tracked.js": "// tracked under an excluded name\n",
    }
    write_files(path, files)
    (path / "bin/run.sh").chmod(0o755)
    (path / "data.bin").write_bytes(bytes(range(256)) * 40 + b"\0\xff")
    os.symlink("src/app.py", path / "link-to-app")
    os.symlink("../src", path / "docs/src-dir")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "remote", "add", "origin", origin)
    return path


def transfer(
    source: Path,
    target: Path,
    tmp: Path,
    *,
    force: bool = False,
    compress: bool = False,
    known: tuple[str | None, ...] = (),
    limits: Limits | None = None,
) -> receive.Received:
    """Pack ``source`` and receive it into ``target`` in-process (what push/pull do)."""
    outgoing = send.prepare(source)
    buffer = io.BytesIO()
    send.write_archive(outgoing, buffer, compress=compress)
    buffer.seek(0)
    with receive.repo_lock(target):
        return receive.receive(
            target,
            buffer,
            staging_dir=tmp / "staging",
            limits=limits or Limits(),
            force=force,
            known=known,
        )


def repo_listing(root: Path) -> dict[str, tuple]:
    """Work tree and ``.git`` (refs, index, logs, config, stash), minus object storage.

    Looking at a repo writes a few unreachable tree objects (the snapshot); that is the
    only change a refused or failed transfer may leave.
    """
    return {
        name: value
        for name, value in tree_listing(root, skip=()).items()
        if not name.startswith(".git/objects/") and name != ".git/ocm.lock"
    }
