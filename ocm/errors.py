"""The one error type a user ever sees.

Raised where the fault is understood, caught once in ``ocm.cli.main``, printed as
``ocm: <what went wrong>; <what to do>``. Anything else is a bug and shows a traceback
only with ``OCM_DEBUG=1``.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


class OcmError(Exception):
    """Raised when something the user can fix went wrong; carries the one line to print."""

    exit_code = ExitCode.FAILURE

    def __init__(self, what: str, todo: str | None = None) -> None:
        self.what = what
        self.todo = todo
        super().__init__(f"{what}; {todo}" if todo else what)

    @property
    def message(self) -> str:
        return str(self)


class UsageError(OcmError):
    """Raised when the command line itself is wrong (exit code 2)."""

    exit_code = ExitCode.USAGE


class ManagerError(OcmError):
    """Raised when the Manager cannot be reached or answers with an error."""

    def __init__(
        self,
        what: str,
        todo: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(what, todo)
        self.status = status
        self.code = code


class AuthError(ManagerError):
    """Raised when the Manager rejects the token (HTTP 401)."""


class ConflictError(ManagerError):
    """Raised when the Manager refuses because work would be lost (HTTP 409)."""
