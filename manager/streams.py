"""Which repo directories have a TUI attached right now (SPEC §5 ``inUse``).

The proxy opens a lease for every event stream it holds; push asks ``in_use`` before it
overwrites a repo an agent session may be working in.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator


def _key(directory: str) -> str:
    return os.path.normpath(directory) if directory else ""


class StreamTracker:
    """Thread-safe count of open event streams per directory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def lease(self, directory: str) -> Iterator[None]:
        self.acquire(directory)
        try:
            yield
        finally:
            self.release(directory)

    def acquire(self, directory: str, limit: int | None = None) -> bool:
        """Open a lease unless ``limit`` streams are open already (then False, nothing held).

        The proxy holds a lease from the moment it accepts an event stream until waitress
        closes the response, which is not one ``with`` block: hence the explicit pair.
        """
        key = _key(directory)
        with self._lock:
            if limit is not None and sum(self._open.values()) >= limit:
                return False
            self._open[key] += 1
        return True

    def release(self, directory: str) -> None:
        key = _key(directory)
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]

    def in_use(self, directory: str) -> bool:
        with self._lock:
            return self._open.get(_key(directory), 0) > 0

    def attached(self, directory: str) -> int:
        """How many event streams (TUIs) are open on ``directory`` now."""
        with self._lock:
            return self._open.get(_key(directory), 0)

    def total(self) -> int:
        with self._lock:
            return sum(self._open.values())
