"""Which repo directories have a TUI attached right now (SPEC §5 ``inUse``).

The proxy opens a lease for every event stream it holds; push asks ``in_use`` before it
overwrites a repo an agent session may be working in.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator


def _key(directory: str) -> str:
    return os.path.normpath(directory) if directory else ""


class StreamTracker:
    """Thread-safe count of open event streams per directory, and since when each is held.

    "Since when" is the wall-clock time the directory went from no stream to one: a push
    refused because a TUI is attached says how long it has been, which tells a forgotten
    TUI from someone at work.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._since: dict[str, float] = {}

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
            self._since.setdefault(key, time.time())
        return True

    def release(self, directory: str) -> None:
        key = _key(directory)
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
                self._since.pop(key, None)

    def in_use(self, directory: str) -> bool:
        with self._lock:
            return self._open.get(_key(directory), 0) > 0

    def attached(self, directory: str) -> int:
        """How many event streams (TUIs) are open on ``directory`` now."""
        with self._lock:
            return self._open.get(_key(directory), 0)

    def in_use_since(self, directory: str) -> float | None:
        """When the directory's current run of open streams began (epoch seconds), or None."""
        with self._lock:
            return self._since.get(_key(directory))

    def total(self) -> int:
        with self._lock:
            return sum(self._open.values())
