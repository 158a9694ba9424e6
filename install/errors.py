"""The one error type the installer shows a user."""

from __future__ import annotations

PROGRAM = "ocm-cli"


class InstallError(Exception):
    """Raised when something the user can fix stops the install; carries the one line to print."""

    exit_code = 1

    def __init__(self, what: str, todo: str | None = None) -> None:
        self.what = what
        self.todo = todo
        super().__init__(f"{what}; {todo}" if todo else what)

    def line(self) -> str:
        return f"{PROGRAM}: {self}"
