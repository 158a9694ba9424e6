"""What the console keeps in memory for the life of the server (``app.extensions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from manager.web.clones import CloneJobs
from manager.web.shared_rows import SharedRows
from manager.web.signin import SignInThrottle

EXTENSION = "ocm_web"


@dataclass
class ConsoleState:
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    # The Repos page's rows, shared by every tab (manager.web.shared_rows).
    rows: SharedRows = field(default_factory=SharedRows)
    clones: CloneJobs = field(init=False)
    # What a removal could not do, by repo id: shown once on the Repos page it redirects to,
    # so that a reload of that page does not post the removal again.
    removal_notices: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A clone started here that ends (ready, failed, or stopped and removed) is the
        # console's own change: its row shows it at the next poll, not an interval later.
        self.clones = CloneJobs(ended=self.rows.invalidate)


def console_state() -> ConsoleState:
    from flask import current_app

    state: ConsoleState = current_app.extensions.setdefault(EXTENSION, ConsoleState())
    return state


def services() -> Any:
    from flask import current_app

    return current_app.extensions["ocm"]
