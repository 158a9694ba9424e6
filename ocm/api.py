"""The Manager's HTTP API (over :mod:`ocm.transport`).

Every failure is turned into an :class:`~ocm.errors.OcmError` here, where its meaning is
known: 401 → :class:`AuthError`, 409 → :class:`ConflictError`, 404 → "not found", anything
non-JSON or 5xx → :class:`ManagerError`, a refused/unresolvable/slow connection → "cannot
reach the Manager at <url>" within :data:`CONNECT_TIMEOUT` seconds. The token travels only
in the ``Authorization`` header and never appears in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ocm import __version__
from ocm.errors import AuthError, ConflictError, ManagerError
from ocm.transport import Body, Response, Transport, Unreachable

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
WARM_UP_TIMEOUT = 5.0
WORKSPACES_PATH = "/api/internal/opencode-workspaces"
PROXY_PATH = "/api/opencode-proxy"
# The proxy's answer (503) when the Manager has no OpenCode at all (--no-opencode, or none
# installed): no TUI can work there.
NO_OPENCODE = "opencode_not_configured"
# The 401 of the listener that serves OpenCode's web app (``--port`` + 1), with its
# ``managerUrl``: a browser's sign-in is missing there, and a token is no credential.
WEB_APP_SIGN_IN = "not_signed_in"
ROUTE_NOT_FOUND = "not_found"  # the Manager's error code for a path it does not serve
MANAGER_STOPPING = "manager_stopping"  # ... for a transfer its stop cut short
NO_SPACE = "no_space"  # ... for a transfer its full disk refused: the message says whose


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


class Workspace(NamedTuple):
    """One Manager repo as ``/api/internal/opencode-workspaces`` describes it.

    A NamedTuple, not a dataclass: ``dataclasses`` adds ~10 ms to bare ``ocm``'s start.
    """

    repo_id: int
    name: str
    branch: str
    status: str
    directory: str
    origin_url: str | None
    # The root commits of the repo's HEAD: they match a checkout without origin (SPEC §3).
    root_commits: tuple[str, ...] = ()

    @property
    def branch_label(self) -> str:
        """The branch as shown: a ready repo without one has a detached HEAD."""
        return self.branch or ("detached HEAD" if self.status == "ready" else "")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Workspace:
        return cls(
            repo_id=int(data["repoId"]),
            name=str(data.get("name") or ""),
            branch=str(data.get("branch") or ""),
            status=str(data.get("cloneStatus") or data.get("status") or "ready"),
            directory=str(data.get("directory") or ""),
            origin_url=data.get("originUrl") or None,
            root_commits=_strings(data.get("rootCommits")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "repoId": self.repo_id,
            "name": self.name,
            "branch": self.branch,
            "status": self.status,
            "directory": self.directory,
            "originUrl": self.origin_url,
            "rootCommits": list(self.root_commits),
        }


def _error_message(response: Response) -> str | None:
    """The Manager's ``{"error", "message"}`` sentence, if the body is that JSON."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str) and message.strip():
            return message.strip().rstrip(".")
    return None


# Why a Manager has no OpenCode (the ``opencode`` field of its 503), and what to do: one
# what-to-do that fits the reason, never the Manager's own advice beside a second one.
_WITHOUT_OPENCODE = {
    "disabled": (
        "the Manager runs without OpenCode (--no-opencode)",
        "whoever runs the Manager restarts `ocm-manager serve` without --no-opencode",
    ),
    "unavailable": (
        "OpenCode is not installed on the Manager",
        "whoever runs the Manager installs it there (`python3 -m install --manager` from the"
        " ocm checkout) and restarts `ocm-manager serve`, or starts it with --opencode-bin or"
        " --opencode-url",
    ),
}


def _no_opencode(response: Response) -> tuple[str, str] | None:
    """Why the Manager has no OpenCode at all and what to do, when its answer says so."""
    if response.status_code != 503:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("error") != NO_OPENCODE:
        return None
    known = _WITHOUT_OPENCODE.get(str(body.get("opencode")))
    if known is not None:
        return known
    said = str(body.get("message") or "").strip().rstrip(".")
    # A Manager that does not say its state: its own sentence, which may advise already.
    return (
        said.removeprefix("No OpenCode server is available: ") or NO_OPENCODE,
        "whoever runs the Manager gives it an OpenCode",
    )


def _manager_url_todo(url: str, said: object) -> str:
    """Where to log in instead of a Manager's web-app listener: the address it gave, else
    the port below its own (``serve``'s default, ``--port`` + 1)."""
    if isinstance(said, str) and said.startswith(("http://", "https://")):
        return f"use the Manager's own URL: `ocm login {said.rstrip('/')}`"
    parts = urlsplit(url)
    if parts.port and parts.hostname:
        guess = urlunsplit(
            parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0]}:{parts.port - 1}")
        )
        return (
            f"use the Manager's own URL, the one `ocm-manager serve` says it listens on (by"
            f" default {guess}, the port below this one)"
        )
    return "use the Manager's own URL, the one `ocm-manager serve` says it listens on"


def _plain_http_url(url: str) -> str:
    """``url`` (an https one) with http in its place, at the same port."""
    parts = urlsplit(url)
    netloc = parts.netloc if parts.port else f"{parts.netloc}:443"
    return urlunsplit(parts._replace(scheme="http", netloc=netloc))


class ManagerClient:
    """A logged-in conversation with one Manager; reuse it so connections stay alive."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        token_label: str = "the saved token",
        token_renewal: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token_label = token_label
        # What to do about a rejected token (a 401).
        self.token_renewal = token_renewal or f"run `ocm login {self.url}` with a current token"
        self._token = token
        self.transport = Transport(
            self.url, connect_timeout=CONNECT_TIMEOUT, user_agent=f"ocm/{__version__}"
        )

    def __enter__(self) -> ManagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def open_early(self) -> None:
        """Connect now, on a thread, while the caller works (see Transport.open_early)."""
        self.transport.open_early()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = READ_TIMEOUT,
        conflict_todo: str = "resolve it on the Manager, or re-run with --force",
        auth: bool = True,
    ) -> Response:
        """Send one request; a 2xx response is returned, everything else raises an OcmError.

        ``path`` starts with ``/``. The body is left unread: the caller reads and closes the
        response. ``conflict_todo`` is the advice printed with a 409.
        """
        all_headers = dict(headers or {})
        if auth:
            all_headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self.transport.request(
                method,
                path,
                params=params,
                body=data,
                headers=all_headers,
                read_timeout=read_timeout,
            )
        except Unreachable as exc:
            if exc.proxy:
                where, variable = exc.proxy
                raise ManagerError(
                    f"cannot reach the Manager at {self.url} through the proxy {where} that "
                    f"{variable} names ({exc.reason})",
                    f"fix {variable}, or add {self.transport.host} to no_proxy to reach the "
                    "Manager directly",
                ) from None
            todo = "check the URL and that the Manager is running"
            if exc.plain_http:
                todo = f"use {_plain_http_url(self.url)} instead, or check the URL"
            elif exc.tls:
                todo = (
                    "check the Manager's certificate, or use its http:// URL on a trusted network"
                )
            raise ManagerError(
                f"cannot reach the Manager at {self.url} ({exc.reason})", todo
            ) from None
        if response.status_code < 300:
            return response
        try:
            self._raise_for(response, path, conflict_todo)
        finally:
            response.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for(self, response: Response, path: str, conflict_todo: str) -> None:
        status = response.status_code
        message = _error_message(response)
        try:
            said = response.json()
        except ValueError:
            said = None
        body: dict[str, Any] = said if isinstance(said, dict) else {}
        code = body.get("error") if isinstance(body.get("error"), str) else None
        if status == 401 and code == WEB_APP_SIGN_IN and "managerUrl" in body:
            raise ManagerError(
                f"{self.url} is a Manager's OpenCode web app, not the Manager's API (the"
                " token was not checked)",
                _manager_url_todo(self.url, body.get("managerUrl")),
                status=status,
                code=code,
            )
        if status == 401:
            raise AuthError(
                f"token from {self.token_label} rejected by {self.url}",
                self.token_renewal,
                status=status,
                code=code,
            )
        if status == 409:
            raise ConflictError(
                message or f"the Manager at {self.url} refused (conflict)",
                conflict_todo,
                status=status,
                code=code,
            )
        if status == 404:
            # "not_found" is the Manager's answer to a path it does not serve (the URL has
            # a path it should not have, say): only its other 404s speak of a repo.
            if message and code != ROUTE_NOT_FOUND:
                raise ManagerError(
                    message,
                    "run `ocm list` to see the repos on the Manager",
                    status=status,
                    code=code,
                )
            todo = "check that the URL points at an ocm Manager"
            parts = urlsplit(self.url)
            if parts.path:  # a Manager answers at its root unless a proxy adds a prefix
                todo += f" (without the path {parts.path}: {parts.scheme}://{parts.netloc})"
            raise ManagerError(
                f"{self.url} has no {path.split('?')[0]}",
                todo,
                status=status,
                code=code,
            )
        if 300 <= status < 400:
            where = response.headers.get("Location", "elsewhere")
            raise ManagerError(
                f"{self.url} redirects to {where}",
                "log in with the URL it redirects to",
                status=status,
            )
        if message is None:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise ManagerError(
                f"the Manager at {self.url} answered HTTP {status} ({kind}, not an ocm JSON error)",
                "check the URL, and the Manager's log if it is yours",
                status=status,
                code=code,
            )
        if code == NO_SPACE and message:  # what to do is for whoever runs the Manager
            raise ManagerError(message, status=status, code=code)
        todo = "check the Manager's log" if status >= 500 else "check the command's arguments"
        if code == MANAGER_STOPPING:
            todo = "run the command again once the Manager is back"
        raise ManagerError(
            f"the Manager at {self.url} answered HTTP {status}: {message}",
            todo,
            status=status,
            code=code,
        )

    def get_json(
        self, path: str, *, params: Mapping[str, Any] | None = None, auth: bool = True
    ) -> Any:
        """GET ``path`` and return the decoded JSON body (a non-JSON 2xx is a ManagerError)."""
        response = self.request("GET", path, params=params, auth=auth)
        try:
            return response.json()
        except ValueError:
            raise ManagerError(
                f"{self.url}{path} did not answer with JSON",
                "check that the URL points at an ocm Manager",
            ) from None
        finally:
            response.close()

    def health(self) -> dict[str, Any]:
        body = self.get_json("/api/health", auth=False)
        return body if isinstance(body, dict) else {}

    def workspaces(self, *, root_commits: bool = True) -> list[Workspace]:
        """Ready repos on the Manager, in the Manager's order; without ``root_commits``,
        which only a checkout without origin needs and which may cost the Manager a walk
        of each history that moved, their ``root_commits`` are empty."""
        params = None if root_commits else {"rootCommits": "0"}
        body = self.get_json(WORKSPACES_PATH, params=params)
        try:
            items = body["workspaces"]
            return [Workspace.from_json(item) for item in items]
        except (KeyError, TypeError, ValueError):
            raise ManagerError(
                f"{self.url}{WORKSPACES_PATH} answered an unexpected shape",
                "check that the Manager and ocm versions match",
            ) from None

    def warm_up(self, directory: str) -> bool:
        """Best effort: let OpenCode load ``directory`` before the TUI asks for it. Whether
        OpenCode answered (below 500, in time); the TUI reports its own problems, but for a
        Manager with no OpenCode at all (ManagerError): the TUI would only print the
        Manager's sentence after its terminal set-up, with a stack trace."""
        try:
            response = self.transport.request(
                "GET",
                f"{PROXY_PATH}/session",
                params={"directory": directory},
                headers={"Authorization": f"Bearer {self._token}"},
                read_timeout=WARM_UP_TIMEOUT,
            )
            try:
                absent = _no_opencode(response)
            finally:
                response.close()
        except (Unreachable, OSError):
            return False
        if absent is not None:
            why, todo = absent
            raise ManagerError(
                f"no TUI can attach to the Manager at {self.url}: {why}",
                f"{todo}, then run the command again",
                status=response.status_code,
                code=NO_OPENCODE,
            )
        return response.status_code < 500

    def opencode_state(self) -> str | None:
        """OpenCode's state on the Manager as ``/api/health`` says it (None: unknown)."""
        try:
            opencode = self.health().get("opencode")
        except ManagerError:
            return None
        state = opencode.get("state") if isinstance(opencode, dict) else None
        return state if isinstance(state, str) else None
