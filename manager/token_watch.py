"""The running Manager's view of the stored token and of the console's live sign-ins, kept
current while it serves.

``ocm-manager token rotate`` runs in another process and only rewrites the hash in the
registry. Requests check that hash themselves (``manager.auth``), but an event stream opened
with the old token would go on for hours: this watch reads the hash every ``interval``
seconds and tells the proxy when it changed, so that those streams end at once. It also
answers "does this request carry the token?" from memory for the connection guard
(``manager.connection_guard``), which decides about every request head on the event loop
and must not wait for SQLite there; the application still checks every request itself.
For the same reason it keeps the sign-ins made with the current token (hashes of their
cookies, and when they expire): the guard of OpenCode's web app asks it whether a request
carries a live sign-in. This process's own sign-ins and sign-outs call ``check`` at once.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable

from manager.tokens import hash_token

log = logging.getLogger("manager.auth")

POLL_INTERVAL = 0.5


class TokenWatch:
    def __init__(
        self,
        read_hash: Callable[[], str | None],
        interval: float = POLL_INTERVAL,
        read_sign_ins: Callable[[str], dict[str, float]] | None = None,
    ):
        self._read_hash = read_hash
        self._read_sign_ins = read_sign_ins
        self.interval = interval
        self._checking = threading.Lock()
        self.current: str | None = read_hash()
        # {hash of a sign-in cookie: expiry} of the sign-ins made with the current token.
        self.sign_ins: dict[str, float] = self._sign_ins_of(self.current)
        self._listeners: list[Callable[[str | None], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def matches(self, candidate: str | None) -> bool:
        stored = self.current
        if not stored or candidate is None:
            return False
        return hmac.compare_digest(hash_token(candidate), stored)

    def signed_in(self, cookie_hash: str | None) -> bool:
        expires = self.sign_ins.get(cookie_hash) if cookie_hash else None
        return expires is not None and expires > time.time()

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(new_hash)`` (on the thread that noticed) whenever the token changes."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="token-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Read the stored hash and sign-ins once; True (and listeners told) when the token
        changed."""
        with self._checking:
            stored = self._read_hash()
            self.sign_ins = self._sign_ins_of(stored)
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

    def _sign_ins_of(self, token_hash: str | None) -> dict[str, float]:
        if self._read_sign_ins is None or token_hash is None:
            return {}
        return self._read_sign_ins(token_hash)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a locked or briefly missing database: try again next time
                log.debug("could not read the token hash", exc_info=True)
