"""The mirror's failures, each with the HTTP status the Manager answers it with.

The library is shared by both receivers (the Manager for push, the laptop for pull), so it
raises these plain exceptions; the Manager turns them into JSON errors and the client into
one ``ocm: ...`` line.
"""

from __future__ import annotations


class MirrorError(Exception):
    """Raised when a transfer cannot go ahead; ``message`` is one sentence for a person."""

    status = 500
    code = "mirror_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadArchive(MirrorError):
    """Raised when an incoming archive is malformed or hostile; nothing was changed."""

    status = 400
    code = "bad_archive"


class TooLarge(BadArchive):
    """Raised when an archive exceeds the configured byte or member limits.

    A 400 like every other refused archive (issue 4); 413 is left to the raw upload size.
    """

    status = 400
    code = "archive_too_large"


class Refused(MirrorError):
    """Raised when the transfer would lose work on the receiving side (unless forced)."""

    status = 409
    code = "would_lose_work"


class Busy(MirrorError):
    """Raised when another transfer holds the repo's lock."""

    status = 409
    code = "busy"


class NotARepo(MirrorError):
    """Raised when a directory is not a git work tree the mirror can handle."""

    status = 400
    code = "not_a_repo"
