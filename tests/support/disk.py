"""A small real disk for tests of what a full one does: a tmpfs, mounted as root."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

needs_mount = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mount"), reason="mounts a tmpfs"
)


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"100m"``) mounted at ``path`` (made) for the block."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill_up(disk: Path, leave: int = 0) -> Path:
    """Take all but ``leave`` bytes of ``disk``'s free space, as another program writing to
    it would: a file of its own each time (``.filler-N`` at its top). Returns that file."""
    filler = disk / f".filler-{len(list(disk.glob('.filler-*')))}"
    with open(filler, "wb", buffering=0) as handle:
        wanted = shutil.disk_usage(disk).free - leave
        if wanted > 0:
            with contextlib.suppress(OSError):
                os.posix_fallocate(handle.fileno(), 0, wanted)
        if not leave:  # whatever the allocation left over, a block at a time
            handle.seek(0, os.SEEK_END)
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * 4096)
    return filler


def free_up(disk: Path) -> None:
    """Delete what :func:`fill_up` took."""
    for filler in disk.glob(".filler-*"):
        filler.unlink()
