"""Progress on stderr while bytes move: phase, bytes, rate. Silent unless stderr is a TTY."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from ocm.printable import printable


def human(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover


class Progress:
    """``with Progress("sending") as p: p.add(n)``; redraws at most ten times a second.

    It also redraws every ``TICK`` seconds while no byte moves, with the seconds taken: a
    long wait (the other side packing or checking a large file) then reads as work, not as a
    hang."""

    TICK = 0.5

    def __init__(self, phase: str, stream: TextIO | None = None, *, counting: bool = True) -> None:
        self.phase = printable(phase)
        self.counting = counting  # False: a phase that moves no bytes, shown with its time
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()
        self._over = threading.Event()
        self._next: Progress | None = None  # the phase ``finish(then=...)`` began

    def __enter__(self) -> Progress:
        return self.start()

    def start(self, *, at_once: bool = False) -> Progress:
        """Count the seconds from now; ``at_once``: draw the line now, not at the first tick."""
        self.started = time.monotonic()
        if self.enabled:
            if at_once:
                with self._lock:
                    self._draw()
            threading.Thread(target=self._tick, name="progress", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def _tick(self) -> None:
        while not self._over.wait(self.TICK):
            with self._lock:
                if not self._over.is_set():
                    self._draw()

    def finish(self, then: str | None = None) -> None:
        """Draw the final count and end the line (once). ``then`` names the next phase,
        which shows its seconds from now until this one is finished again (its block
        ends): what the other side does with the bytes can take longer than moving them."""
        if self._over.is_set():
            if self._next is not None:
                self._next.finish()
            return
        self._over.set()
        with self._lock:
            if self.enabled and self._drawn:
                self._draw()
                self.stream.write("\n")
                self._drawn = 0.0
            self.stream.flush()
        if then:
            self._next = Progress(then, self.stream, counting=False).start(at_once=True)

    def add(self, count: int) -> None:
        self.total += count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1 and not self._over.is_set():
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        # Caller holds self._lock.
        now = time.monotonic()
        self._drawn = now
        elapsed = max(now - self.started, 1e-6)
        counts = (
            f": {human(self.total)}, {human(self.total / elapsed)}/s," if self.counting else " ..."
        )
        self.stream.write(f"\r{self.phase}{counts} {elapsed:.0f} s   ")
        self.stream.flush()
