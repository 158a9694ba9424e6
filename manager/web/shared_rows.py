"""The Repos page's rows, computed once for every open tab and request.

Each open tab asks for the page's JSON twin every 2 s, and the rows cost a ``git status``
per repo and questions to OpenCode: computed per request, 157 repos and two tabs kept a core
busy and the answers seconds late. So the rows are shared. A request within the interval
after the last computation gets those; a request that comes while they are being computed
waits for that result rather than compute the same again beside it.

The rule: rows are good for at least ``MIN_INTERVAL`` (the tabs' own pace, so a small
Manager's page is as fresh as it was when every request computed its own) and for at least
``COST_SHARE`` times what computing them took, counted from the start of that computation.
So computing rows takes at most 1/COST_SHARE of the Manager's time, however many tabs are
open and however many repos there are; what the page shows is then at most that interval
(and one computation) old. What the console itself changes (a repo added or removed, a clone it
ran ending) drops them at once (``invalidate``), so its own actions show at the next poll.
Changes from elsewhere (a push, a TUI attaching, a file edited) show within one interval;
they are not watched, as keeping up with them is what costs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

MIN_INTERVAL = 2.0  # seconds: console.js polls every 2 s
COST_SHARE = 5

Rows = list[dict[str, Any]]


def good_for(took: float) -> float:
    """Seconds from the start of a computation that took ``took`` s that its rows are served."""
    return max(MIN_INTERVAL, COST_SHARE * took)


class SharedRows:
    def __init__(self) -> None:
        self._computing = threading.Lock()
        # Apart from the computing lock, so an action's invalidate never waits for a
        # computation (seconds with many repos) before its page answers.
        self._changes_lock = threading.Lock()
        self._changes = 0
        self._rows: Rows | None = None
        self._rows_changes = -1  # the count of changes the rows were computed after
        self._until = 0.0

    def invalidate(self) -> None:
        """The console changed what the rows show: the next request computes them anew,
        and so does one whose computation was under way when this came."""
        with self._changes_lock:
            self._changes += 1

    def get(self, compute: Callable[[], Rows]) -> Rows:
        """The rows, from ``compute`` when they are due; each a copy, for the view to add
        what only its request knows (the host a link names)."""
        with self._computing:
            with self._changes_lock:
                changes = self._changes
            started = time.monotonic()
            if self._rows is None or changes != self._rows_changes or started >= self._until:
                self._rows = compute()
                self._rows_changes = changes
                self._until = started + good_for(time.monotonic() - started)
            rows = self._rows
        return [dict(row) for row in rows]
