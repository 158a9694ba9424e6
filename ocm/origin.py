"""Origin URL normalisation (SPEC §3): the one rule that decides whether two remotes match.

Bare ``ocm``, ``push`` and ``pull`` all find the Manager repo for a checkout with it, so the
rule lives here, alone, with no imports that cost start-up time.
"""

from __future__ import annotations

import re

# ``[user@]host:path`` with no scheme and no ``/`` before the colon is git's scp-like syntax.
_SCP_LIKE = re.compile(r"^(?P<user>[^/@:]+@)?(?P<host>[^/:]+):(?P<path>.*)$")


def normalise_origin(url: str) -> str:
    """Trimmed, lower-cased, ``git@host:path`` → ``ssh://git@host/path``, no final ``/``, ``.git``.

    >>> normalise_origin(" git@GitHub.com:Acme/Widget.git/ ")
    'ssh://git@github.com/acme/widget'
    >>> normalise_origin("https://github.com/acme/widget/")
    'https://github.com/acme/widget'
    """
    text = url.strip().lower()
    if "://" not in text:
        match = _SCP_LIKE.match(text)
        # A single letter before the colon is a Windows drive, not a host.
        if match and len(match.group("host")) > 1:
            path = match.group("path").lstrip("/")
            text = f"ssh://{match.group('user') or ''}{match.group('host')}/{path}"
    while True:
        trimmed = text.rstrip("/")
        if trimmed.endswith(".git"):
            trimmed = trimmed[: -len(".git")]
        if trimmed == text:
            return text
        text = trimmed


def same_origin(left: str | None, right: str | None) -> bool:
    """True when both are set and name the same remote after normalisation."""
    if not left or not right:
        return False
    return normalise_origin(left) == normalise_origin(right)
