"""What ``ocm push``/``pull`` are measured against, through a relay of the same kind.

- ``TarPipe``: a raw ``tar -c | tar -x`` of a list of files, the pipe being a TCP
  connection through a :class:`Relay` (so its bytes are counted and shaped like ocm's).
- ``RsyncDaemon``: ``rsync --daemon`` on 127.0.0.1 with one module (the "remote" copy);
  ``rsync -a --delete`` talks to it through a relay (``rsync://127.0.0.1:<relay>/remote/``).

And the file set both baselines move: exactly what ``ocm`` sends (README "What travels"):
``.git`` and what git does not ignore, minus untracked build directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from shaped_link import Relay

TIMEOUT = 900  # no single transfer in this benchmark may take longer than this
BUILD_DIRS = {"node_modules", "dist", ".next", ".venv", "__pycache__", ".turbo"}


def _ls(repo: Path, *args: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", *args], cwd=repo, check=True, capture_output=True, timeout=300
    ).stdout
    return [os.fsdecode(name) for name in out.split(b"\0") if name]


def _build_dir_prefix(path: str) -> str | None:
    parts = path.rstrip("/").split("/")
    for index, part in enumerate(parts):
        if part in BUILD_DIRS:
            return "/".join(parts[: index + 1])
    return None


def travelling_files(repo: Path) -> list[str]:
    """Every file that travels with a push of ``repo``, ``.git`` included."""
    names = [n for n in _ls(repo, "--cached") if os.path.lexists(repo / n)]
    names += [n for n in _ls(repo, "--others", "--exclude-standard") if not _build_dir_prefix(n)]
    for dirpath, _dirs, files in os.walk(repo / ".git"):
        rel = os.path.relpath(dirpath, repo)
        names += [f"{rel}/{f}" for f in files if not f.endswith(".lock")]
    return sorted(set(names))


def rsync_excludes(repo: Path) -> list[str]:
    """rsync patterns (anchored at the repo) for what stays home: ignored and build dirs."""
    patterns = {
        "/" + name
        for name in _ls(repo, "--others", "--ignored", "--exclude-standard", "--directory")
    }
    for name in _ls(repo, "--others", "--exclude-standard", "--directory"):
        prefix = _build_dir_prefix(name)
        if prefix:
            patterns.add(f"/{prefix}/")
    return sorted(patterns)


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


class TarPipe:
    """``tar -c`` of some files into a relayed TCP connection, ``tar -x`` at the far end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._sink = socket.create_server(("127.0.0.1", 0))
        self._sink.settimeout(30)
        self.relay = Relay(self._sink.getsockname()[:2])

    def copy(self, source: Path, names: list[str], dest: Path) -> None:
        listing = self.work / "tar-files"
        listing.write_bytes(b"".join(os.fsencode(n) + b"\0" for n in names))
        clear(dest)
        sender_sock = socket.create_connection(("127.0.0.1", self.relay.port), timeout=30)
        sender_sock.settimeout(None)  # blocking: tar must not see EAGAIN
        sender = subprocess.Popen(
            ["tar", "-C", str(source), "--null", "-T", str(listing), "-cf", "-"],
            stdout=sender_sock.fileno(),
        )
        sender_sock.close()
        receiver = None
        try:
            conn, _ = self._sink.accept()
            conn.settimeout(None)
            receiver = subprocess.Popen(["tar", "-C", str(dest), "-xf", "-"], stdin=conn.fileno())
            conn.close()
            if sender.wait(timeout=TIMEOUT) or receiver.wait(timeout=TIMEOUT):
                raise RuntimeError(f"tar failed: {sender.returncode}, {receiver.returncode}")
        finally:
            for process in (sender, receiver):
                if process and process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)

    def close(self) -> None:
        self.relay.close()
        self._sink.close()


class RsyncDaemon:
    """``rsync --daemon`` serving ``remote`` (read-write) on 127.0.0.1, reached via a relay."""

    def __init__(self, work: Path, remote: Path) -> None:
        self.work, self.remote = work, remote
        remote.mkdir(parents=True, exist_ok=True)
        config = work / "rsyncd.conf"
        config.write_text(
            "use chroot = no\n"
            f"uid = {os.getuid()}\ngid = {os.getgid()}\n"
            "[remote]\n"
            f"    path = {remote}\n"
            "    read only = no\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        for _ in range(5):  # a free port can be taken between asking and binding: retry
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.process = subprocess.Popen(
                [
                    "rsync",
                    "--daemon",
                    "--no-detach",
                    "--address=127.0.0.1",
                    f"--port={port}",
                    f"--config={config}",
                    f"--log-file={work / 'rsyncd.log'}",
                ],
                start_new_session=True,
            )
            if self._listening(port):
                break
            self._stop()
        else:
            raise RuntimeError("rsync --daemon did not start; see " + str(work / "rsyncd.log"))
        self.relay = Relay(("127.0.0.1", port))

    def _listening(self, port: int) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process and self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            time.sleep(0.05)
        return False

    @property
    def url(self) -> str:
        return f"rsync://127.0.0.1:{self.relay.port}/remote/"

    def _rsync(self, source: str, dest: str, excludes: Path) -> None:
        done = subprocess.run(
            ["rsync", "-a", "--delete", f"--exclude-from={excludes}", source, dest],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if done.returncode:
            raise RuntimeError(f"rsync failed: {done.stderr.strip().splitlines()[-1:]}")

    def push(self, local: Path, excludes: Path) -> None:
        self._rsync(f"{local}/", self.url, excludes)

    def pull(self, local: Path, excludes: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        self._rsync(self.url, f"{local}/", excludes)

    def _stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # the daemon and its children
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def close(self) -> None:
        if hasattr(self, "relay"):
            self.relay.close()
        self._stop()
