"""A pseudo-terminal's side the tests read, as a person's terminal would show it."""

from __future__ import annotations

import os


def read_until_closed(controller: int) -> bytes:
    """Everything written to the terminal until the last process holding it lets go (EIO),
    then the controller is closed."""
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    return shown
