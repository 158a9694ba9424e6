"""What several commands share: the Manager URL, the logged-in client, remembering a repo.

:func:`connect` is the factory every networked command (and ``push``/``pull``) uses: URL from
``OPENCODE_MANAGER_URL`` or state.json, token from ``OCM_TOKEN``/credentials.json/keyring.
Nothing here imports the HTTP client at module level, so ``ocm status`` stays fast.
"""

from __future__ import annotations

import os
import sys

from ocm import credentials, paths
from ocm import state as state_mod
from ocm.errors import OcmError, UsageError
from ocm.printable import printable

TYPE_CHECKING = False  # typing and dataclasses stay unimported: status must start fast
if TYPE_CHECKING:
    from ocm.api import ManagerClient, Workspace

URL_ENV = "OPENCODE_MANAGER_URL"


def normalise_manager_url(raw: str, *, what: str = "the Manager URL") -> str:
    """Scheme and host required (http/https), lower-cased; trailing ``/`` dropped; a path
    outside ASCII percent-encoded. Refused (UsageError): whatever no connection could be
    made to."""
    from urllib.parse import quote, urlsplit, urlunsplit  # noqa: PLC0415

    text = raw.strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # an unbalanced [ or ] (an IPv6 host written by hand)
        raise UsageError(
            f"{what} {text!r} is not a valid URL",
            "write it like https://manager.example.com or http://[::1]:5003",
        ) from None
    if "@" in parts.netloc:
        # Checked first, and the URL is not repeated: it may hold a password.
        raise UsageError(
            f"{what} contains a user name or password (user@host)",
            "leave them out: the Manager token is the only credential ocm sends "
            "(give it to `ocm login` at the prompt or on stdin)",
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "://" not in text:
        meant = _with_scheme(text)
        raise UsageError(
            f"{what} {text!r} needs a scheme and a host",
            f"write it with its scheme: {meant}"
            if meant
            else "write it like https://manager.example.com or http://127.0.0.1:5003",
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise UsageError(
            f"{what} {text!r} has an invalid port", "write it like http://127.0.0.1:5003"
        ) from None
    if parts.query or parts.fragment:
        raise UsageError(
            f"{what} {text!r} has a query or fragment",
            "give just the scheme, host, port and path prefix",
        )
    if any(char.isspace() or not char.isprintable() for char in text):
        # Checked on the text as typed: parsing drops a tab or a newline without a word, and
        # the HTTP client refuses the rest.
        raise UsageError(
            f"{what} {text!r} contains a space or a control character",
            "write it like https://manager.example.com or http://127.0.0.1:5003",
        )
    if not _resolvable(parts.hostname or ""):
        raise UsageError(
            f"{what} {text!r} has a host name that cannot be looked up (an empty part, or a"
            " part longer than 63 characters)",
            "write it like https://manager.example.com or http://127.0.0.1:5003",
        )
    # A path prefix outside ASCII is sent percent-encoded, as a browser sends it (the
    # request line is ASCII); everything else in it is kept as written.
    path = quote(parts.path.rstrip("/"), safe=_PRINTABLE_ASCII)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


_PRINTABLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))


def _resolvable(host: str) -> bool:
    """Whether the resolver can be asked for ``host`` at all: a name IDNA cannot encode
    (``a..b``, a part over 63 characters) fails before any lookup."""
    if ":" in host:  # an IPv6 address: no labels to encode
        return True
    if host.isascii():  # the usual case, without importing the IDNA codec (5 ms)
        return all(0 < len(label) < 64 for label in host.removesuffix(".").split("."))
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _with_scheme(text: str) -> str | None:
    """``host[:port][/path]`` written without a scheme, with the one it most likely lacks:
    http on this machine (as ``ocm-manager serve`` listens), https elsewhere (a team's
    Manager is behind TLS). None when ``text`` is not such a host."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    if "://" in text or not text or any(char.isspace() for char in text):
        return None
    try:
        host = urlsplit(f"//{text}").hostname
    except ValueError:
        return None
    if not host or host.isdigit():  # a port alone
        return None
    here = host in {"localhost", "::1"} or host.startswith("127.")
    return f"{'http' if here else 'https'}://{text}"


class ManagerUrl:
    __slots__ = ("url", "source")

    def __init__(self, url: str, source: str) -> None:
        self.url = url
        self.source = source  # "OPENCODE_MANAGER_URL" or "state.json"


def manager_url(state: state_mod.State) -> ManagerUrl | None:
    """``$OPENCODE_MANAGER_URL`` (normalised) over the logged-in URL; None when neither."""
    env = os.environ.get(URL_ENV, "").strip()
    if env:
        return ManagerUrl(normalise_manager_url(env, what=URL_ENV), URL_ENV)
    if state.manager_url:
        try:
            url = normalise_manager_url(state.manager_url, what=f"{paths.state_file()}'s URL")
        except UsageError as exc:  # written by hand, or by something else than ocm
            raise OcmError(f"not logged in: {exc.what}", "run `ocm login <url>`") from None
        return ManagerUrl(url, "state.json")
    return None


class Login:
    """The Manager URL (and where it came from) and the token (and its store)."""

    __slots__ = ("url", "url_source", "token")

    def __init__(self, url: str, url_source: str, token: credentials.TokenSource) -> None:
        self.url = url
        self.url_source = url_source
        self.token = token


def require_login(state: state_mod.State) -> Login:
    """URL and token, or an error saying how to log in."""
    where = manager_url(state)
    if where is None and state.problem:
        raise OcmError(
            f"not logged in: {state.problem}",
            # A file, empty or corrupt: the login writes it anew.
            state.problem_todo or "run `ocm login <url>`, which writes it anew",
        )
    if where is None:
        raise OcmError(
            "not logged in to a Manager",
            f"run `ocm login <url>` (or set {URL_ENV} and {credentials.ENV_TOKEN})",
        )
    token = credentials.find_token(where.url, state.keyring_for(where.url))
    flaw = paths.config_dir_flaw() if token is None else None
    if flaw:  # no credentials.json could be there: say why, not "no token in it"
        raise OcmError(f"no token for {where.url}: {flaw[0]}", flaw[1])
    if token is None:
        raise OcmError(
            f"no token for {where.url} in {credentials.file_label()} or the OS "
            f"keyring, and {credentials.ENV_TOKEN} is not set",
            f"run `ocm login {where.url}`",
        )
    return Login(where.url, where.source, token.checked())


def connect(state: state_mod.State | None = None) -> tuple[ManagerClient, Login]:
    """A :class:`~ocm.api.ManagerClient` for the logged-in Manager, and where that came from."""
    from ocm.api import ManagerClient  # noqa: PLC0415 - http.client is not free to import

    login = require_login(state if state is not None else state_mod.load())
    client = ManagerClient(
        login.url,
        login.token.token,
        token_label=login.token.label,
        token_renewal=login.token.renewal(login.url),
    )
    return client, login


def remember(state: state_mod.State, login: Login, ws: Workspace) -> state_mod.State:
    """Save ``ws`` as the last used repo of ``login.url``, and the keyring backend the token
    was found in (a login older than that record, or a token moved since, gets it here).

    When ``OPENCODE_MANAGER_URL`` names another Manager than the one logged in to, state.json
    is left alone: a last repo only means something next to its own Manager URL.
    """
    if state.manager_url not in (None, login.url) or not paths.state_file().is_absolute():
        return state  # (or OCM_CONFIG_DIR is relative: nothing is kept where ocm runs)
    updated = state.with_last_repo(ws.repo_id, ws.name, ws.directory, ws.branch).replace(
        manager_url=login.url, keyring_backend=login.token.keeper or state.keyring_backend
    )
    if updated == state and paths.state_file().exists():
        return state  # already remembered: spare the write (and its fsync)
    return state_mod.save(updated)


def last_repo_state(state: state_mod.State, login: Login) -> state_mod.State:
    """``state`` when its last repo belongs to ``login.url``; else one without a last repo."""
    if state.manager_url in (None, login.url):
        return state
    return state.without_last_repo()


def note(message: str) -> None:
    """A line for the person at the terminal (stderr, so stdout stays parseable)."""
    print(f"ocm: {printable(message)}", file=sys.stderr, flush=True)
