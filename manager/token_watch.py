"""The running Manager's view of the stored token, kept current while it serves.

``ocm-manager token rotate`` runs in another process and only rewrites the hash in the
registry. Requests check that hash themselves (``manager.auth``), but an event stream opened
with the old token would go on for hours: this watch reads the hash every ``interval``
seconds and tells the proxy when it changed, so that those streams end at once. It also
answers "does this request carry the token?" from memory for the connection guard
(``manager.connection_guard``), which decides about every request head on the event loop
and must not wait for SQLite there; the application still checks every request itself.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable

from manager.auth import hash_token

log = logging.getLogger("manager.auth")

POLL_INTERVAL = 0.5


class TokenWatch:
    def __init__(self, read_hash: Callable[[], str | None], interval: float = POLL_INTERVAL):
        self._read_hash = read_hash
        self.interval = interval
        self.current: str | None = read_hash()
        self._listeners: list[Callable[[str | None], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def matches(self, candidate: str | None) -> bool:
        stored = self.current
        if not stored or candidate is None:
            return False
        return hmac.compare_digest(hash_token(candidate), stored)

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(new_hash)`` (on the watch's thread) whenever the token changes."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="token-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Read the stored hash once; True (and listeners told) when it changed."""
        stored = self._read_hash()
        if stored == self.current:
            return False
        self.current = stored
        log.info("the Manager token changed; ending event streams opened with the old one")
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:
                log.exception("could not act on the token change")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a locked or briefly missing database: try again next time
                log.debug("could not read the token hash", exc_info=True)
