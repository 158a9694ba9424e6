"""Progress on stderr while bytes move: phase, bytes, rate. Silent unless stderr is a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover


class Progress:
    """``with Progress("sending") as p: p.add(n)``; redraws at most ten times a second."""

    def __init__(self, phase: str, stream: TextIO | None = None) -> None:
        self.phase = phase
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self, then: str | None = None) -> None:
        """Draw the final count and end the line (once); ``then`` names the next phase."""
        if self.enabled and self._drawn:
            self._draw()
            self.stream.write("\n")
            self._drawn = 0.0
        if then:
            self.note(then)
        self.stream.flush()

    def add(self, count: int) -> None:
        self.total += count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw()

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.stream.write(
            f"\r{self.phase}: {human(self.total)}, {human(self.total / elapsed)}/s   "
        )
        self.stream.flush()

    def note(self, text: str) -> None:
        """A phase without byte counts ("switching the work tree")."""
        if self.enabled:
            self.stream.write(f"{text}\n")
            self.stream.flush()
