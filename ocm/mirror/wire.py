"""The mirror's wire format: its version, and the names both sides put on the wire.

Version 2 (this one) moves git objects: ``/head`` says what the receiver has (``tips``),
``/up`` and ``/down`` carry one pack (``git pack-objects`` output) plus the snapshot commit
and branch it describes. Version 1 was a tar stream of the checkout and ``.git``; it has no
version marker, which is how it is recognised.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from ocm.mirror.errors import BadPack, WrongVersion

VERSION = 2
# Query parameter (on /up and /down) and /head's JSON field that carry the version.
VERSION_PARAM = "v"
VERSION_FIELD = "mirrorVersion"
# Response headers of /down (the pack is the body).
SNAPSHOT_HEADER = "X-Ocm-Snapshot"
# The branch as it is: HTTP carries only ASCII there, and git allows any UTF-8 ("фикс").
BRANCH_HEADER = "X-Ocm-Branch"
# The branch percent-encoded (UTF-8), sent instead when /down's query asks for it with
# QUOTED_BRANCH_PARAM=1: every ocm since 2026-12-03 asks; an older one is refused a branch
# the plain header cannot carry, and told to upgrade.
QUOTED_BRANCH_HEADER = "X-Ocm-Branch-Quoted"
QUOTED_BRANCH_PARAM = "quotedBranch"
# How many of the repo's OpenCode sessions were running a turn as the pack was made: what
# they write next comes with the next pull.
BUSY_HEADER = "X-Ocm-Busy-Sessions"
# What the Manager's snapshot leaves out (nested repositories, sockets and other
# special files): how many, then the first few, each percent-quoted (see quote_names).
NOT_SENT_HEADER = "X-Ocm-Not-Sent"
NOT_SENT_SHOWN = 5
PACK_TYPE = "application/x-git-pack"
# How many tips (newest first) a side offers as "a pack may assume these": enough for every
# branch anyone works on, small enough for a URL.
MAX_TIPS = 200


def parse_version(raw: object) -> int:
    """The version a request or answer claims; 1 when it claims none (the tar format)."""
    try:
        return int(str(raw)) if raw not in (None, "") else 1
    except ValueError:
        return 0


def manager_check(raw: object) -> None:
    """On the Manager: refuse a client that speaks another version, saying who upgrades."""
    theirs = parse_version(raw)
    if theirs != VERSION:
        upgrade = "ocm on the client machine" if theirs < VERSION else "the Manager"
        raise WrongVersion(
            f"this Manager speaks mirror format {VERSION} and the client format {theirs}: "
            f"upgrade {upgrade}"
        )


def client_check(raw: object, url: str) -> tuple[str, str] | None:
    """On the client: None when the Manager at ``url`` speaks our version, else what is
    wrong and which side to upgrade (one line, for :class:`ocm.errors.OcmError`)."""
    theirs = parse_version(raw)
    if theirs == VERSION:
        return None
    older = "the Manager (ocm-manager)" if theirs < VERSION else "ocm on this machine"
    return (
        f"the Manager at {url} speaks mirror format {theirs} and this ocm format {VERSION}",
        f"upgrade {older} so that both speak the same",
    )


def quote_names(names: list[str]) -> str:
    """``names`` as NOT_SENT_HEADER carries them: ``<count>;<name>;…`` (the first few)."""
    return ";".join([str(len(names)), *(quote(name, safe="/") for name in names[:NOT_SENT_SHOWN])])


def unquote_names(raw: str) -> tuple[int, list[str]]:
    """(how many, the first few) from a NOT_SENT_HEADER; (0, []) when it says nothing."""
    count, *names = raw.split(";")
    if not (count.isascii() and count.isdigit()) or len(count) > 9:  # a count, not a bomb
        return 0, []
    return int(count), [unquote(name) for name in names[:NOT_SENT_SHOWN]]


def quote_branch(branch: str) -> str:
    """``branch`` as QUOTED_BRANCH_HEADER carries it."""
    return quote(branch, safe="/")


def unquote_branch(quoted: str) -> str:
    """The branch a QUOTED_BRANCH_HEADER names."""
    try:
        return unquote(quoted, errors="strict")
    except UnicodeDecodeError:
        raise BadPack(f"the branch name {quoted[:80]!r} is not UTF-8") from None
