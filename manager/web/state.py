"""What the console keeps in memory for the life of the server (``app.extensions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from manager.web.clones import CloneJobs
from manager.web.signin import SignInThrottle

EXTENSION = "ocm_web"


@dataclass
class ConsoleState:
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    clones: CloneJobs = field(default_factory=CloneJobs)
    # What a removal could not do, by repo id: shown once on the Repos page it redirects to,
    # so that a reload of that page does not post the removal again.
    removal_notices: dict[int, str] = field(default_factory=dict)


def console_state() -> ConsoleState:
    from flask import current_app

    state: ConsoleState = current_app.extensions.setdefault(EXTENSION, ConsoleState())
    return state


def services() -> Any:
    from flask import current_app

    return current_app.extensions["ocm"]
