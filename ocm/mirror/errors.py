"""The mirror's failures, each with the HTTP status the Manager answers it with.

The library is shared by both receivers (the Manager for push, the laptop for pull), so it
raises these plain exceptions; the Manager turns them into JSON errors and the client into
one ``ocm: ...`` line.
"""

from __future__ import annotations

import errno

# What the OS says of a file this account may not use: its mode, its owner, a read-only
# mount. The user's to fix, never a bug.
NOT_ALLOWED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# What the OS says of a write the disk has no room for: full, over a quota, or past a file
# size limit (RLIMIT_FSIZE). Freeing space is the remedy, never a bug.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class MirrorError(Exception):
    """Raised when a transfer cannot go ahead. ``what`` says what happened and ``todo``, when
    the failure has a remedy of its own, what to do; ``message`` is both as one sentence."""

    status = 500
    code = "mirror_failed"

    def __init__(self, what: str, todo: str | None = None) -> None:
        self.what = what
        self.todo = todo
        self.message = what if todo is None else f"{what}; {todo}"
        super().__init__(self.message)


class BadPack(MirrorError):
    """Raised when an incoming pack or the snapshot it brings is malformed or hostile;
    nothing was changed."""

    status = 400
    code = "bad_pack"


class IncompletePack(BadPack):
    """Raised when the pack leans on objects the receiver does not have (its history was
    rewritten since it said what it has): the sender sends again, assuming nothing."""

    code = "pack_incomplete"


class TooLarge(BadPack):
    """Raised when a pack exceeds the receiver's object or byte limits.

    A 400 like every other refused pack (issue 4); 413 is left to the raw upload size.
    """

    code = "too_large"


class OtherKind(MirrorError):
    """Raised when the two sides name their objects by different hash functions (SHA-1 and
    SHA-256, ``git init --object-format``): git moves no object between such repositories.
    ``theirs`` is the sending side's."""

    status = 409
    code = "object_format"

    def __init__(self, side: str, ours: str, sender: str, theirs: str) -> None:
        self.theirs = theirs
        super().__init__(
            f"{side} names its objects by {_HASH_NAMES.get(ours, ours)}, {sender} by "
            f"{_HASH_NAMES.get(theirs, theirs)}, and git moves no objects between the two"
        )


_HASH_NAMES = {"sha1": "SHA-1", "sha256": "SHA-256"}


class NoSpace(MirrorError):
    """Raised when the receiving disk is full (or a size limit of the OS is hit)."""

    status = 507
    code = "no_space"

    @classmethod
    def receiving(cls, when: str) -> NoSpace:
        """The receiving side's disk had no room ``when`` (e.g. "while storing the pack")."""
        return cls(
            f"the receiving disk is full (or a file size limit was hit){when}",
            "free some space and try again",
        )


class WrongVersion(MirrorError):
    """Raised when the two sides speak different versions of the mirror's wire format."""

    status = 400
    code = "mirror_version"


class Refused(MirrorError):
    """Raised when the transfer would lose work on the receiving side (unless forced)."""

    status = 409
    code = "would_lose_work"


class ChangedMeanwhile(MirrorError):
    """Raised when the receiving side changed where the switch would write (or moved its
    HEAD) while the transfer was under way: the switch was weighed against what it was
    before. ``--force`` does not help; run again, the transfer then weighs the change."""

    status = 409
    code = "changed_meanwhile"


class Blocked(MirrorError):
    """Raised when an incoming file would replace a folder holding files the receiving side
    ignores (build output, say): no snapshot or stash holds those, so ``--force`` does not
    help; moving them away does."""

    status = 409
    code = "blocked_by_ignored"


class NameClash(MirrorError):
    """Raised when the receiving file system takes two of the snapshot's names for one, as
    macOS does with names that differ only in case or in Unicode normalization (Windows in
    case): writing both would leave one file where the snapshot holds two, and the next
    transfer back would lose the other. ``--force`` does not help; another name for one of
    them does."""

    status = 409
    code = "names_clash"


class NameNotTaken(MirrorError):
    """Raised when the receiving file system does not take a name or path of the snapshot:
    longer than it takes (a Mac takes names of 255 characters, Linux of 255 bytes), or not
    UTF-8 where it takes only UTF-8, as a Mac's does (git takes any bytes; a tool on Linux
    may write Latin-1). ``--force`` does not help; another name does."""

    status = 409
    code = "name_not_taken"


class Unfinished(MirrorError):
    """Raised when the receiving side is in the middle of a merge, rebase or the like: even
    forced, switching its work tree would leave git's state of it behind, or lose it."""

    status = 409
    code = "unfinished_operation"


class GitBusy(MirrorError):
    """Raised when another git command holds the receiving repo's index (``index.lock``):
    switching the work tree under it would leave an index git then writes over."""

    status = 409
    code = "git_busy"


class LockHeld(GitBusy):
    """Raised when git finds another git's lock file where it needs one (a branch's, HEAD's,
    the config's): a git at work there, or one killed in its work, which left the file.
    ``lock`` is its path, from the repo's root when inside it."""

    def __init__(self, root: object, lock: str) -> None:
        self.lock = lock
        super().__init__(
            f"{root} is in use by another git command (its {lock} exists)",
            f"wait for that command to end (if no git is running, delete {lock}), then run "
            "this one again",
        )


class Unreadable(MirrorError):
    """Raised when a file or folder that would travel may not be read (a container left it
    owned by root, say): a snapshot without it would have the other side delete its copy."""

    status = 409
    code = "unreadable_file"

    def __init__(self, root: object, detail: str) -> None:
        self.detail = detail  # git's or the OS's words: what may not be read, and why
        super().__init__(
            f"cannot read part of {root} ({detail})",
            "make it readable, or have git ignore it (.gitignore or .git/info/exclude), then "
            "run the command again",
        )


class Unwritable(MirrorError):
    """Raised when the switch may not write a file or folder of the receiving work tree (a
    folder a container left owned by root, say); what it had done is undone."""

    status = 409
    code = "unwritable_file"


class Busy(MirrorError):
    """Raised when another transfer holds the repo's lock."""

    status = 409
    code = "busy"


class NotARepo(MirrorError):
    """Raised when a directory is not a git work tree the mirror can handle."""

    status = 400
    code = "not_a_repo"
