"""The wire format: a tar stream (optionally gzip) of ``.git/`` plus the selected files.

Both directions stream: the sender writes members straight from disk into the output, the
receiver extracts member by member from the input, so neither side ever holds the archive
in memory. Extraction trusts nothing: every member is checked before a byte is written
(see :func:`extract`), and files are created with ``O_EXCL | O_NOFOLLOW`` so nothing can be
written through a link or over an earlier member.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ocm.mirror.errors import BadArchive, MirrorError, TooLarge
from ocm.mirror.select import link_stays_inside

CHUNK = 1 << 20
GZIP_LEVEL = 1  # fast: most of a repo's bytes are .git packs, already compressed
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Limits:
    """What an incoming archive may hold; decompressed sizes count."""

    max_bytes: int = 8 * 1024**3
    max_members: int = 500_000


@dataclass
class Extracted:
    members: int = 0
    bytes: int = 0


class NoSpace(MirrorError):
    """Raised when the receiving disk is full (or a size limit of the OS is hit)."""

    status = 507
    code = "no_space"


def _info(root: Path, name: str) -> tarfile.TarInfo | None:
    try:
        st = os.lstat(root / name)
    except (FileNotFoundError, NotADirectoryError):  # vanished since it was listed
        return None
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(root / name)
        info.mode = 0o777
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    else:
        return None
    return info


def iter_pack(root: Path, names: Iterable[str], *, compress: bool,
              progress: Progress | None = None) -> Iterator[bytes]:
    """Yield a tar stream (gzip when ``compress``) of ``names``, relative to ``root``.

    A generator, so the same code feeds an HTTP upload, a WSGI response or a file, with at
    most one chunk in memory and no threads. Headers come from ``tarfile`` (PAX, so long
    and non-ASCII names survive); file data is copied in chunks. Hard links are never
    produced: every file is sent as itself, so the receiver can refuse hard links outright.
    """
    gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compress else None
    pending: list[bytes] = []
    size = 0

    def flush() -> bytes:
        nonlocal size
        data = b"".join(pending)
        pending.clear()
        size = 0
        return gz.compress(data) if gz is not None else data

    for name in names:
        info = _info(root, name)
        if info is None:
            continue
        pending.append(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        size += len(pending[-1])
        if info.isreg():
            try:
                with open(root / name, "rb") as handle:
                    remaining = info.size
                    while remaining > 0:
                        chunk = handle.read(min(CHUNK, remaining))
                        if not chunk:
                            raise OSError(errno.EIO, "file shrank while being sent")
                        pending.append(chunk)
                        size += len(chunk)
                        remaining -= len(chunk)
                        if size >= CHUNK:
                            yield flush()
            except OSError as exc:
                raise MirrorError(f"cannot read {name} ({exc.strerror or exc}); it may have "
                                  "changed while being sent: try again") from None
            padding = -info.size % tarfile.BLOCKSIZE
            if padding:
                pending.append(b"\0" * padding)
                size += padding
        if progress:
            progress(info.size)
        if size >= CHUNK:
            yield flush()
    pending.append(b"\0" * (2 * tarfile.BLOCKSIZE))  # end of archive: two zero blocks
    yield flush() + (gz.flush() if gz is not None else b"")


def pack(root: Path, names: Iterable[str], out: BinaryIO, *, compress: bool,
         progress: Progress | None = None) -> None:
    """Write :func:`iter_pack`'s stream to a file object."""
    for chunk in iter_pack(root, names, compress=compress, progress=progress):
        out.write(chunk)


def _clean_name(raw: str) -> str:
    """The member's path, normalised, or BadArchive when it could leave the destination."""
    if not raw or "\0" in raw or raw.startswith("/"):
        raise BadArchive(f"the archive holds an absolute or empty path ({raw!r})")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if not parts:
        raise BadArchive(f"the archive holds an empty path ({raw!r})")
    if ".." in parts:
        raise BadArchive(f"the archive holds a path with '..' ({raw!r})")
    if parts[0] != ".git" and any(part.lower() == ".git" for part in parts):
        raise BadArchive(f"the archive holds a nested .git ({raw!r})")
    return "/".join(parts)


def _open_stream(stream: BinaryIO) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|*", bufsize=CHUNK,
                            encoding="utf-8", errors="surrogateescape")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BadArchive(f"the upload is not a tar archive ({exc})") from None


def _check_member(member: tarfile.TarInfo, name: str, dest: Path, links: set[str],
                  seen: set[str]) -> None:
    if name in seen:
        raise BadArchive(f"the archive holds {name} twice")
    seen.add(name)
    parts = name.split("/")
    for depth in range(1, len(parts)):
        if "/".join(parts[:depth]) in links:
            raise BadArchive(f"the archive writes {name} through a symlink")
    if member.issym():
        if not link_stays_inside(name, member.linkname):
            raise BadArchive(f"the archive holds a symlink leaving the repo ({name} -> "
                             f"{member.linkname})")
        links.add(name)
    elif member.islnk():
        raise BadArchive(f"the archive holds a hard link ({name})")
    elif not (member.isreg() or member.isdir()):
        raise BadArchive(f"the archive holds a device, fifo or other special file ({name})")
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:  # Python 3.10.12+/3.11.4+: the stdlib's own second opinion
        try:
            data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            raise BadArchive(f"the archive holds a forbidden member ({exc})") from None


def extract(stream: BinaryIO, dest: Path, limits: Limits,
            progress: Progress | None = None) -> Extracted:
    """Extract a tar stream into the empty directory ``dest``, refusing anything hostile.

    Refused (BadArchive, 400): absolute paths, ``..``, a nested ``.git`` in the work tree,
    symlinks leaving the tree, paths through a symlink, hard links, devices and fifos,
    duplicate members. Over the limits (TooLarge, 413): more members or more decompressed
    bytes than allowed. A full disk is NoSpace (507). On any error ``dest`` is left as is
    for the caller to delete.
    """
    done = Extracted()
    links: set[str] = set()
    seen: set[str] = set()
    made_dirs: set[str] = {""}
    try:
        with _open_stream(stream) as tar:
            for member in tar:
                name = _clean_name(member.name)
                done.members += 1
                if done.members > limits.max_members:
                    raise TooLarge(f"the archive holds more than {limits.max_members} files "
                                   "(the receiver's limit)")
                _check_member(member, name, dest, links, seen)
                if member.isreg():
                    done.bytes += member.size
                    if done.bytes > limits.max_bytes:
                        raise TooLarge(f"the archive unpacks to more than {limits.max_bytes} "
                                       "bytes (the receiver's limit)")
                parent = name.rsplit("/", 1)[0] if "/" in name else ""
                if parent not in made_dirs:
                    os.makedirs(dest / parent, exist_ok=True)
                    made_dirs.add(parent)
                target = dest / name
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                    made_dirs.add(name)
                elif member.issym():
                    os.symlink(member.linkname, target)
                else:
                    _write_file(tar, member, target)
                    if progress:
                        progress(member.size)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BadArchive(f"the archive is truncated or corrupt ({exc})") from None
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise NoSpace("the receiving disk is full (or a file size limit was hit) while "
                          "unpacking; free some space and try again") from None
        if exc.errno == errno.EEXIST:
            raise BadArchive("the archive writes one path twice") from None
        raise
    return done


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    mode = 0o755 if member.mode & 0o100 else 0o644
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 mode)
    try:
        os.fchmod(fd, mode)  # exact bits, whatever the umask
        remaining = member.size
        while remaining > 0 and source is not None:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise BadArchive(f"the archive ends inside {member.name}")
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            remaining -= len(chunk)
    finally:
        os.close(fd)
