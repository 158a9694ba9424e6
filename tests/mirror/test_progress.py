"""Progress on stderr: only on a terminal, and alive while no byte moves."""

from __future__ import annotations

import io
import re
import threading
import time

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


def test_a_phase_without_bytes_shows_only_its_time() -> None:
    terminal = Terminal()
    with Progress("looking at proj", terminal, counting=False):
        assert wait_until(lambda: "\r" in terminal.shown(), timeout=30)
    shown = terminal.shown()
    assert shown.startswith("\rlooking at proj ... ") and shown.endswith(" s   \n")
    assert "B/s" not in shown


def test_the_phase_after_the_bytes_is_shown_at_once_and_counts_its_seconds_to_the_end() -> None:
    # The other side's checks of a large push take longer than its upload: a line that
    # stood still for them read as a hang.
    terminal = Terminal()
    with Progress("sending to proj", terminal) as progress:
        progress.add(2048)
        progress.finish(then="the Manager is checking")
        # Drawn at once, not at the first tick half a second later.
        assert re.search(r"\rthe Manager is checking \.\.\. \d+ s   $", terminal.shown())
        assert wait_until(lambda: terminal.shown().count("checking ... ") >= 3, timeout=30)
        before = terminal.shown()
    after = terminal.shown()
    assert before.startswith("\rsending to proj: 2.0 KB, ")
    # Leaving the block ends the checking line, once: nothing is drawn after it.
    assert after.startswith(before) and after.endswith(" s   \n") and after.count("\n") == 2
    time.sleep(Progress.TICK * 2)
    assert terminal.shown() == after


def test_nothing_is_drawn_when_stderr_is_not_a_terminal() -> None:
    piped = io.StringIO()
    with Progress("sending", piped) as progress:
        progress.add(10)
        progress.finish(then="next")
    assert piped.getvalue() == ""
