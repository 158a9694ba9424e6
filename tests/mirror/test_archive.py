"""The tar stream itself: our writer, GNU tar's formats, and corrupt input."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from ocm.mirror.archive import Limits, extract, iter_pack
from ocm.mirror.errors import BadArchive
from ocm.mirror.send import prepare
from tests.mirror.helpers import rich_repo, tree_listing

LONG = "deep/" + "d" * 120 + "/" + "ü" * 60 + " with space.txt"


def _repo(tmp_path: Path) -> Path:
    root = rich_repo(tmp_path / "src")
    (root / LONG).parent.mkdir(parents=True)
    (root / LONG).write_text("long unicode name\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 9000)
    return root


@pytest.mark.parametrize("compress", [False, True])
def test_our_stream_round_trips_and_gnu_tar_reads_it(tmp_path: Path, compress: bool) -> None:
    root = _repo(tmp_path)
    data = b"".join(iter_pack(root, prepare(root).names, compress=compress))
    done = extract(io.BytesIO(data), tmp_path / "out", Limits())
    assert tree_listing(tmp_path / "out") == tree_listing(root)
    assert LONG in done.names and ".git/HEAD" not in done.names
    (tmp_path / "gnu").mkdir()
    subprocess.run(
        ["tar", "-x" + ("z" if compress else ""), "-C", str(tmp_path / "gnu")],
        input=data,
        check=True,
    )
    assert tree_listing(tmp_path / "gnu") == tree_listing(root)


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_gnu_tar_archives_are_read(tmp_path: Path, fmt: str) -> None:
    root = _repo(tmp_path)
    names = [n for n in prepare(root).names if fmt != "ustar" or len(n.encode()) < 99]
    listing = tmp_path / "names"
    listing.write_bytes(b"\0".join(n.encode() for n in names))
    data = subprocess.run(
        ["tar", f"--format={fmt}", "-C", str(root), "--null", "-T", str(listing), "-cf", "-"],
        check=True,
        capture_output=True,
    ).stdout
    extract(io.BytesIO(data), tmp_path / "out", Limits())
    expected = {k: v for k, v in tree_listing(root).items() if k in names}
    assert tree_listing(tmp_path / "out") == expected


def test_unchanged_files_are_compared_not_written(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    data = b"".join(iter_pack(root, prepare(root).names, compress=False))
    (root / "README.md").write_text("differs now\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 8999 + bytes(256))  # same size
    done = extract(io.BytesIO(data), tmp_path / "out", Limits(), compare_root=root)
    assert "README.md" not in done.same and "big.bin" not in done.same
    assert (tmp_path / "out/big.bin").read_bytes() == bytes(range(256)) * 9000
    assert "src/app.py" in done.same and not (tmp_path / "out/src/app.py").exists()


def test_corrupt_streams_are_bad_archives(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    data = bytearray(b"".join(iter_pack(root, prepare(root).names, compress=False)))
    data[148] ^= 1  # checksum of the first header
    for n, body in enumerate([bytes(data), bytes(data[:700]), b"\x1f\x8bnot gzip", b"x" * 512]):
        with pytest.raises(BadArchive):
            extract(io.BytesIO(body), tmp_path / f"out{n}", Limits())


def test_an_archive_may_start_with_a_top_level_file(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    data = b"".join(iter_pack(root, ["README.md", "src/app.py"], compress=False))
    extract(io.BytesIO(data), tmp_path / "not-yet" / "there", Limits())
    assert (tmp_path / "not-yet/there/README.md").read_text() == "# proj\n"
