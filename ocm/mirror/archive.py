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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ocm.mirror.errors import BadArchive, MirrorError, TooLarge
from ocm.mirror.select import link_stays_inside
from ocm.mirror.tarstream import (
    DECODE_ERRORS,
    DIRECTORY,
    HARDLINK,
    REGULAR,
    SYMLINK,
    Member,
    TarReader,
    open_stream,
)

CHUNK = 1 << 20
GZIP_LEVEL = 1  # fast: most of a repo's bytes are .git packs, already compressed
BLOCK = tarfile.BLOCKSIZE
ZEROS = bytes(BLOCK)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Limits:
    """What an incoming archive may hold; decompressed sizes count."""

    max_bytes: int = 8 * 1024**3
    max_members: int = 500_000


class NoSpace(MirrorError):
    """Raised when the receiving disk is full (or a size limit of the OS is hit)."""

    status = 507
    code = "no_space"


def _ustar(name: bytes, mode: int, size: int, mtime: int, kind: bytes, link: bytes) -> bytes:
    """A plain ustar header, built directly: ``tarfile``'s costs ~30 µs a member."""
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % mode,
            b"0000000\0",
            b"0000000\0",
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b"        ",
            kind,
            link.ljust(100, b"\0"),
            b"ustar\x0000",
            b"\0" * 32,
            b"\0" * 32,
            b"0000000\0",
            b"0000000\0",
            b"\0" * 167,
        )
    )
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _header(name: str, st: os.stat_result, link: str | None) -> bytes:
    """The member header: fast ustar for short ASCII names, else ``tarfile``'s PAX header."""
    size = 0 if link is not None else st.st_size
    mode = 0o777 if link is not None else (0o755 if st.st_mode & stat.S_IXUSR else 0o644)
    mtime = int(st.st_mtime)
    simple = (
        name.isascii()
        and len(name) <= 100
        and (link is None or (link.isascii() and len(link) <= 100))
        and size < 8**11
        and 0 <= mtime < 8**11
    )
    if simple:
        kind = tarfile.SYMTYPE if link is not None else tarfile.REGTYPE
        return _ustar(name.encode(), mode, size, mtime, kind, (link or "").encode())
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def iter_pack(
    root: Path, names: Iterable[str], *, compress: bool, progress: Progress | None = None
) -> Iterator[bytes]:
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

    base = os.fspath(root)
    for name in names:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):  # vanished since it was listed
            continue
        if stat.S_ISLNK(st.st_mode):
            pending.append(_header(name, st, os.readlink(path)))
            size += len(pending[-1])
        elif stat.S_ISREG(st.st_mode):
            pending.append(_header(name, st, None))
            size += len(pending[-1])
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    remaining = st.st_size
                    while remaining > 0:
                        chunk = os.read(fd, min(CHUNK, remaining))
                        if not chunk:
                            raise OSError(errno.EIO, "file shrank while being sent")
                        pending.append(chunk)
                        size += len(chunk)
                        remaining -= len(chunk)
                        if size >= CHUNK:
                            yield flush()
                finally:
                    os.close(fd)
            except OSError as exc:
                raise MirrorError(
                    f"cannot read {name} ({exc.strerror or exc}); it may have "
                    "changed while being sent: try again"
                ) from None
            padding = -st.st_size % BLOCK
            if padding:
                pending.append(ZEROS[:padding])
                size += padding
            if progress:
                progress(st.st_size)
        if size >= CHUNK:
            yield flush()
    pending.append(ZEROS * 2)  # end of archive: two zero blocks
    yield flush() + (gz.flush() if gz is not None else b"")


def pack(
    root: Path,
    names: Iterable[str],
    out: IO[bytes],
    *,
    compress: bool,
    progress: Progress | None = None,
) -> None:
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


def _check_member(member: Member, name: str, dest: Path, links: set[str], seen: set[str]) -> None:
    if name in seen:
        raise BadArchive(f"the archive holds {name} twice")
    seen.add(name)
    if links:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in links:
                raise BadArchive(f"the archive writes {name} through a symlink")
    if member.kind in (REGULAR, DIRECTORY):
        # Names were checked above (no absolute path, no '..', nothing under a symlink),
        # which is all data_filter would add for these, at ~250 µs of realpath() each.
        return
    if member.kind == HARDLINK:
        raise BadArchive(f"the archive holds a hard link ({name})")
    if member.kind != SYMLINK:
        raise BadArchive(
            f"the archive holds a {member.kind} ({name}); only files, "
            "directories and symlinks may travel"
        )
    if not link_stays_inside(name, member.linkname):
        raise BadArchive(
            f"the archive holds a symlink leaving the repo ({name} -> {member.linkname})"
        )
    links.add(name)
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:  # Python 3.10.12+/3.11.4+: the stdlib's second opinion on links
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, member.linkname, 0o777
        try:
            data_filter(info, str(dest))
        except tarfile.FilterError as exc:
            raise BadArchive(f"the archive holds a forbidden member ({exc})") from None


@dataclass
class Extracted:
    """What arrived: counts, the work-tree paths (files and links), and which of those the
    receiver already has byte for byte (they were compared, not written)."""

    members: int = 0
    bytes: int = 0
    names: list[str] = field(default_factory=list)
    same: set[str] = field(default_factory=set)


class _Dirs:
    """Which directories exist under a root as real directories (not links), cached."""

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)
        self.known: dict[str, bool] = {"": True}

    def real(self, rel: str) -> bool:
        if rel not in self.known:
            parent = rel.rpartition("/")[0]
            try:
                mode = os.lstat(os.path.join(self.root, rel)).st_mode
            except OSError:
                mode = 0
            self.known[rel] = self.real(parent) and stat.S_ISDIR(mode)
        return self.known[rel]


def extract(
    stream: IO[bytes],
    dest: Path,
    limits: Limits,
    progress: Progress | None = None,
    *,
    compare_root: Path | None = None,
) -> Extracted:
    """Extract a tar stream into the empty directory ``dest``, refusing anything hostile.

    Refused (BadArchive, 400): absolute paths, ``..``, a nested ``.git`` in the work tree,
    symlinks leaving the tree, paths through a symlink, hard links, devices and fifos,
    duplicate members, more members or decompressed bytes than ``limits``. A full disk is
    NoSpace (507). On any error ``dest`` is left as is for the caller to delete.

    With ``compare_root``, a work-tree file that ``compare_root`` already has with the same
    size, exec bit and bytes is compared while it streams in and not written at all: the
    common case (most files unchanged) costs a read instead of a write and a later compare.
    """
    done = Extracted()
    links: set[str] = set()
    seen: set[str] = set()
    made_dirs: set[str] = {""}
    theirs = _Dirs(compare_root) if compare_root is not None else None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = open_stream(stream)
        for member in tar:
            name = _clean_name(member.name)
            done.members += 1
            done.bytes += member.size
            if done.members > limits.max_members:
                raise TooLarge(
                    f"the archive holds more than {limits.max_members} files (the receiver's limit)"
                )
            if done.bytes > limits.max_bytes:
                raise TooLarge(
                    f"the archive unpacks to more than {limits.max_bytes} bytes "
                    "(the receiver's limit)"
                )
            _check_member(member, name, dest, links, seen)
            if member.kind == DIRECTORY:
                os.makedirs(dest / name, exist_ok=True)
                made_dirs.add(name)
                continue
            in_tree = not name.startswith(".git/")
            if in_tree:
                done.names.append(name)
            parent = name.rpartition("/")[0]
            if member.kind == SYMLINK:
                _ensure_dir(dest, parent, made_dirs)
                os.symlink(member.linkname, dest / name)
                continue
            existing = None
            if in_tree and theirs is not None and theirs.real(parent):
                existing = _same_shape(os.path.join(theirs.root, name), member)
            if existing is None:
                _ensure_dir(dest, parent, made_dirs)
                _write_file(tar, member, dest / name, b"", None)
            elif _compare_or_write(tar, member, existing, dest, name, made_dirs):
                done.same.add(name)
            if progress:
                progress(member.size)
    except DECODE_ERRORS as exc:
        raise BadArchive(f"the archive is truncated or corrupt ({exc})") from None
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise NoSpace(
                "the receiving disk is full (or a file size limit was hit) while "
                "unpacking; free some space and try again"
            ) from None
        if exc.errno == errno.EEXIST:
            raise BadArchive("the archive writes one path twice") from None
        raise
    return done


def _ensure_dir(dest: Path, parent: str, made_dirs: set[str]) -> None:
    if parent not in made_dirs:
        os.makedirs(dest / parent, exist_ok=True)
        made_dirs.add(parent)


def _mode(member: Member) -> int:
    return 0o755 if member.mode & 0o100 else 0o644


def _same_shape(path: str, member: Member) -> str | None:
    """``path`` when it is a regular file of the member's size and exec bit, else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size != member.size:
        return None
    if bool(st.st_mode & stat.S_IXUSR) != bool(member.mode & 0o100):
        return None
    return path


def _read(source: TarReader, count: int, name: str) -> bytes:
    chunk = source.read(count)
    if len(chunk) != count:
        raise BadArchive(f"the archive ends inside {name}")
    return chunk


def _compare_or_write(
    source: TarReader, member: Member, existing: str, dest: Path, name: str, made_dirs: set[str]
) -> bool:
    """True when the incoming bytes equal ``existing``; else the file is written to staging."""
    try:
        fd = os.open(existing, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        fd = -1
    offset = 0
    try:
        while offset < member.size:
            count = min(CHUNK, member.size - offset)
            incoming = _read(source, count, name)
            ours = os.pread(fd, count, offset) if fd >= 0 else b""
            if ours != incoming:
                _ensure_dir(dest, name.rpartition("/")[0], made_dirs)
                _write_file(
                    source, member, dest / name, incoming, (fd, offset) if fd >= 0 else None
                )
                return False
            offset += count
    finally:
        if fd >= 0:
            os.close(fd)
    return True


def _write_file(
    source: TarReader, member: Member, target: Path, first: bytes, prefix: tuple[int, int] | None
) -> None:
    """Create ``target`` (never through a link, never over a file) from the member's bytes.

    ``prefix`` = (fd, n): the first n bytes were already matched against fd, copy them from
    there; ``first`` is the incoming chunk that follows them (already read).
    """
    mode = _mode(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)  # exact bits, whatever the umask
        written = 0
        if prefix is not None:
            src_fd, count = prefix
            while written < count:
                data = os.pread(src_fd, min(CHUNK, count - written), written)
                if not data:
                    raise BadArchive(f"{member.name} changed while it was compared")
                _write_all(fd, data)
                written += len(data)
        if first:
            _write_all(fd, first)
            written += len(first)
        while written < member.size:
            chunk = _read(source, min(CHUNK, member.size - written), member.name)
            _write_all(fd, chunk)
            written += len(chunk)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
