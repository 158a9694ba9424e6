"""A folder that treats names as macOS does by default: case-insensitive and
case-preserving (``README.md`` and ``readme.md`` are one file, which keeps the case it was
made with), and, as APFS, insensitive to how an accented letter is encoded but preserving
it (``café.md`` with ``é`` as one code point, NFC, or as ``e`` and a combining accent, NFD,
are one file), and taking only names in UTF-8. A laptop checkout there is what many ``ocm``
users have; Linux has no such filesystem built in here, so this serves one over FUSE,
passing every call through to a plain folder.

``python -m tests.support.casefold_fs BACKING MOUNTPOINT`` serves until unmounted;
:func:`mounted` is the fixture's side: mount, wait, yield, unmount.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mfusepy as fuse

STAT_FIELDS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size")
TIME_FIELDS = ("atime", "mtime", "ctime")


def folded(name: str) -> str:
    """The name as this folder compares names: case-folded and in one Unicode form."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class CaseFolding(fuse.Operations):
    """Every path is looked up component by component: an exact name first, else the one
    entry whose folded name matches; a name that matches none is new, kept as given."""

    use_ns = True

    def __init__(self, backing: str) -> None:
        self.backing = backing

    def _find(self, path: str) -> str:
        real = self.backing
        for part in path.strip("/").split("/"):
            if not part:
                continue
            candidate = os.path.join(real, part)
            if not os.path.lexists(candidate) and os.path.isdir(real):
                wanted = folded(part)
                for entry in os.listdir(real):
                    if folded(entry) == wanted:
                        candidate = os.path.join(real, entry)
                        break
            real = candidate
        return real

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._find(path))
        found = {key: getattr(st, key) for key in STAT_FIELDS}
        found.update({f"st_{key}": getattr(st, f"st_{key}_ns") for key in TIME_FIELDS})
        return found

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # With use_ino each entry needs its inode: one of 0 is a deleted entry to readdir(3).
        found = []
        with os.scandir(self._find(path)) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                found.append((entry.name, {"st_mode": st.st_mode, "st_ino": st.st_ino}, 0))
        return found

    def readlink(self, path: str) -> str:
        return os.readlink(self._find(path))

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._find(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._find(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._find(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._find(path), ns=times, follow_symlinks=False)
        return 0

    def _new(self, path: str) -> str:
        """Where a name is made: as APFS, refused (EILSEQ) when it is not UTF-8. Names come
        decoded with surrogateescape, so such a name holds lone surrogates."""
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise fuse.FuseOSError(errno.EILSEQ) from None
        return self._find(path)

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._new(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._find(path))
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._find(path))
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._new(target))
        return 0

    def link(self, target: str, source: str) -> int:
        os.link(self._find(source), self._new(target))
        return 0

    def rename(self, old: str, new: str) -> int:
        """As macOS does: onto another spelling of the same name, the name takes the new one;
        onto another file, that file is replaced and the name is the one given."""
        source, found = self._find(old), self._new(new)
        given = os.path.join(os.path.dirname(found), os.path.basename(new))
        if found != given and os.path.lexists(found) and not os.path.samefile(source, found):
            os.replace(source, found)
            source = found
        os.rename(source, given)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._find(path))
        return {key: getattr(st, key) for key in dir(st) if key.startswith("f_")}

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        # Read and write whatever the caller asked: the kernel holds it to its own mode.
        return os.open(self._new(path), os.O_RDWR | os.O_CREAT, mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._find(path), flags & ~(os.O_CREAT | os.O_EXCL))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        os.truncate(self._find(path), length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        os.fsync(fh)
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


@contextlib.contextmanager
def mounted(backing: Path, mountpoint: Path) -> Iterator[Path]:
    """``mountpoint`` served case-insensitively from ``backing`` while the block runs."""
    backing.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.casefold_fs", str(backing), str(mountpoint)],
        cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the case-folding filesystem did not mount at {mountpoint}")
            time.sleep(0.05)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    backing, mountpoint = sys.argv[1:3]
    # No kernel caching of names or attributes: a name's case may change at any rename.
    fuse.FUSE(
        CaseFolding(os.path.realpath(backing)),
        mountpoint,
        foreground=True,
        nothreads=True,  # one thread: plenty for a test's few files
        use_ino=True,
        entry_timeout=0,
        attr_timeout=0,
        negative_timeout=0,
    )


if __name__ == "__main__":
    main()
