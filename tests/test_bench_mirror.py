"""bench/mirror.py and its relay work (what they measure is not asserted: no timings in tests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from shaped_link import Relay, Shape  # noqa: E402


def _echo_server() -> tuple[socket.socket, list[bytes]]:
    """Reads everything a client sends, then answers with twice as many bytes."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(1 << 16):
                data += chunk
            received.append(data)
            conn.sendall(data * 2)

    threading.Thread(target=serve, daemon=True).start()
    return server, received


@pytest.mark.parametrize("shape", [None, Shape(rate=20e6, delay=0.02)], ids=["plain", "shaped"])
def test_the_relay_passes_every_byte_and_counts_each_way(shape: Shape | None) -> None:
    server, received = _echo_server()
    payload = bytes(range(256)) * 1000
    with server, Relay(server.getsockname()[:2], shape) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := client.recv(1 << 16):
                answer += chunk
        assert received == [payload]
        assert answer == payload * 2
        assert relay.counted() == (len(payload), 2 * len(payload))


@pytest.mark.slow
def test_the_benchmark_runs_on_a_tiny_repo(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "mirror.py"),
            "--repos=tiny",
            "--links=local",
            "--changes=1",
            "--quick",
            f"--cache={tmp_path / 'cache'}",
            f"--work={work}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| operation")
    }
    assert list(rows) == [
        "first push (--create)",
        "pull into a fresh clone",
        "push, 1 file changed",
        "pull, 1 file changed",
        "push, 1 file changed and committed",
        "pull, 1 file changed and committed",
        "push, 1 file changed, 2 uncommitted before it",  # the two files changed, not committed
    ]
    assert "failed" not in done.stdout
    for cells in rows.values():  # ocm, rsync and tar each moved bytes through the relay
        assert all(cells[i] != "–" for i in (1, 2, 3, 4, 5, 6)), cells
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mirror-tiny-v2"]
    assert list(work.iterdir()) == []  # the checkouts, Manager and copies are gone
