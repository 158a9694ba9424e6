"""Origin URL normalisation (SPEC §3): the one rule that decides whether two remotes match.

Bare ``ocm``, ``push`` and ``pull`` all find the Manager repo for a checkout with it, so the
rule lives here, alone, with no imports that cost start-up time.
"""

from __future__ import annotations

import re

# ``[user@]host:path`` with no scheme and no ``/`` before the colon is git's scp-like syntax.
_SCP_LIKE = re.compile(r"^(?P<user>[^/@:]+@)?(?P<host>[^/:]+):(?P<path>.*)$")
# ``scheme://userinfo@``, wherever it appears in a text; greedy up to the last ``@`` before the
# path, since a password may hold an unescaped ``@``. Tried only where a run of scheme
# characters begins (``lead``: those before its first letter, which a scheme cannot start
# with): tried at every letter, a run of 200,000 of them without ``://`` took minutes (each
# try scanned to its end), under the GIL that every other request of the Manager waits for.
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<lead>[0-9+.-]*)"
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/?#\s]*)@"
)
# Over http(s) a lone user name is often a token (``https://<token>@github.com/...``).
_SECRET_USER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
# So may an http(s) URL's query be (``?access_token=...``): no git remote needs one. A URL
# without a query matches too (and is put back as it is), so that the scan goes on after
# it rather than trying again at each ``http`` inside it.
_QUERY = re.compile(r"(?P<url>\bhttps?://[^\s?#'\"]*)(?P<query>\?[^\s#'\"]*)?", re.IGNORECASE)


def _userinfo(match: re.Match[str], *, hidden: str | None) -> str:
    """The ``scheme://[userinfo@]`` to put back: without the secret part, or with it
    replaced by ``hidden``."""
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    user, has_password, _ = userinfo.partition(":")
    secret_user = scheme.lower() in _SECRET_USER_SCHEMES
    if hidden is None:
        kept = "" if secret_user else user
    elif has_password:
        kept = f"{user}:{hidden}"
    else:
        kept = hidden if secret_user else user
    lead = match.group("lead")
    return f"{lead}{scheme}://{kept}@" if kept else f"{lead}{scheme}://"


def without_credentials(url: str) -> str:
    """``url`` fit to store and to match on: no password, and no user over http(s).

    >>> without_credentials("https://alice:s3cret@example.com/x.git")
    'https://example.com/x.git'
    >>> without_credentials("ssh://git:s3cret@example.com/x.git")
    'ssh://git@example.com/x.git'
    >>> without_credentials("https://example.com/x.git?access_token=s3cret")
    'https://example.com/x.git'
    """
    kept = _USERINFO.sub(lambda match: _userinfo(match, hidden=None), url)
    return _QUERY.sub(lambda match: match.group("url"), kept)


def hide_credentials(text: str) -> str:
    """``text`` (a URL, a log line, git's message) with every URL's secret part as ``***``.

    >>> hide_credentials("fatal: https://alice:s3cret@example.com/x.git: not found")
    'fatal: https://alice:***@example.com/x.git: not found'
    >>> hide_credentials("fatal: repository 'https://example.com/x?access_token=s3cret/' not found")
    "fatal: repository 'https://example.com/x?***' not found"
    """
    hidden = _USERINFO.sub(lambda match: _userinfo(match, hidden="***"), text)
    return _QUERY.sub(_hidden_query, hidden)


def _hidden_query(match: re.Match[str]) -> str:
    return match.group("url") + ("?***" if match.group("query") else "")


def normalise_origin(url: str) -> str:
    """Trimmed, lower-cased, ``git@host:path`` → ``ssh://git@host/path``, no final ``/``, ``.git``.

    >>> normalise_origin(" git@GitHub.com:Acme/Widget.git/ ")
    'ssh://git@github.com/acme/widget'
    >>> normalise_origin("https://github.com/acme/widget/")
    'https://github.com/acme/widget'
    """
    # Credentials name who fetches, not what: a laptop cloned with a token in its origin
    # matches the Manager's repo, which never stores one.
    text = without_credentials(url.strip().lower())
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


def names_a_folder(url: str) -> bool:
    """Whether an origin is no server's: none, or a folder's path (``/home/me/app``,
    ``file:///srv/app``), which ``ocm-manager repo add`` records for a source without
    origin.

    >>> names_a_folder("/home/me/app"), names_a_folder(""), names_a_folder("git@host:x")
    (True, True, False)
    """
    text = normalise_origin(url)
    return "://" not in text or text.startswith("file://")


# A normalised URL's scheme, user and port, which differ between the protocols one server
# offers a repository by (``https://host/x``, ``ssh://git@host/x``, ``ssh://git@host:22/x``).
_SCHEME_USER_PORT = re.compile(
    r"^[a-z][a-z0-9+.-]*://(?:[^/@]*@)?(?P<host>\[[^\]/]*\]|[^/:]*)(?::\d*)?(?P<path>/.*)?$"
)


def repository_address(url: str) -> str:
    """Host and path of ``url``: the same for each protocol a server offers one repository by.

    >>> repository_address("git@GitHub.com:Acme/Widget.git")
    'github.com/acme/widget'
    >>> repository_address("https://github.com/acme/widget/")
    'github.com/acme/widget'
    >>> repository_address("file:///srv/git/widget.git")
    '/srv/git/widget'
    >>> repository_address("https://git.example.com/team/my%20app")
    'git.example.com/team/my app'
    """
    from urllib.parse import unquote  # noqa: PLC0415 - only when nothing matched

    text = normalise_origin(url)
    match = _SCHEME_USER_PORT.match(text)
    # A URL may spell its path percent-encoded (``%20``, ``%D0%BA``), a path as it is.
    return unquote(f"{match.group('host')}{match.group('path') or ''}" if match else text)
