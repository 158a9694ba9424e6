"""Progress on stderr: only on a terminal, and alive while no byte moves."""

from __future__ import annotations

import io
import threading

from ocm.mirror.progress import Progress
from tests.support.proctree import wait_until


class Terminal(io.StringIO):
    """What a terminal would show, written from several threads."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def shown(self) -> str:
        with self.lock:
            return self.getvalue()


def test_a_wait_with_no_bytes_is_redrawn_with_its_seconds() -> None:
    # A large file being packed on the other side moves no byte for a while: the line
    # must keep changing, or it reads as a hang.
    terminal = Terminal()
    with Progress("receiving proj", terminal) as progress:
        progress.add(1024)
        assert wait_until(lambda: terminal.shown().count("\r") >= 3, timeout=30)
    shown = terminal.shown()
    assert "receiving proj: 1.0 KB, " in shown and shown.endswith(" s   \n")


def test_a_phase_without_bytes_shows_only_its_time_and_says_the_next_one_once() -> None:
    terminal = Terminal()
    with Progress("looking at proj", terminal, counting=False) as progress:
        assert wait_until(lambda: "\r" in terminal.shown(), timeout=30)
        progress.finish(then="sending")
    shown = terminal.shown()
    assert "\rlooking at proj ... " in shown and "B/s" not in shown
    assert shown.count("sending\n") == 1  # leaving the block finishes nothing twice


def test_nothing_is_drawn_when_stderr_is_not_a_terminal() -> None:
    piped = io.StringIO()
    with Progress("sending", piped) as progress:
        progress.add(10)
        progress.finish(then="next")
    assert piped.getvalue() == ""
