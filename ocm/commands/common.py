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
    """Scheme and host required (http/https), lower-cased; trailing ``/`` dropped."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

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
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "://" not in text:
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
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


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
        return ManagerUrl(state.manager_url, "state.json")
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
            state.problem_todo
            or f"remove it (`rm -r {paths.state_file()}`) and run `ocm login <url>`",
        )
    if where is None:
        raise OcmError(
            "not logged in to a Manager",
            f"run `ocm login <url>` (or set {URL_ENV} and {credentials.ENV_TOKEN})",
        )
    token = credentials.find_token(where.url, state.keyring_for(where.url))
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
    if state.manager_url not in (None, login.url):
        return state
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
