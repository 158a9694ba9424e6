"""One ``serve`` per data dir: an exclusive ``flock`` held for the Manager's whole life.

Two Managers on one data dir would each clean the other's staging at start-up (deleting a
push in flight), write one log and start an OpenCode each. ``flock`` rather than a pid
file: the kernel releases it when the holder dies, however it dies, so a killed Manager
never blocks the next one. The holder's pid is written in the file only for the message.
The other commands (``repo``, ``token``) do not take it: they work beside a running serve.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from manager.config import DataDirError


class ServeLock:
    """Held from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, path: Path, data_dir: Path) -> None:
        self._path = path
        self._data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise DataDirError naming the Manager that holds it."""
        try:
            # No O_TRUNC: the holder's pid must survive a refused open. Python's descriptors
            # are not inherited, so OpenCode and git never hold the lock after we die.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DataDirError(
                f"cannot open {self._path}: {exc.strerror}; pick a data dir you can write to"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirError(
                f"another Manager ({holder}) is serving {self._data_dir}; stop it first, or"
                " use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    """``pid N`` from the lock file, or ``pid unknown`` while its holder is still writing."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "pid unknown"
