"""``ocm login`` and its inverse ``ocm logout`` (SPEC §3)."""

from __future__ import annotations

import os
import sys

from ocm import credentials
from ocm import state as state_mod
from ocm.commands.common import URL_ENV, manager_url, normalise_manager_url, note
from ocm.errors import AuthError, OcmError, UsageError
from ocm.prompt import ask


def _read_token(given: str | None) -> str:
    """The argument, else a hidden prompt on a TTY, else the first line of stdin."""
    if given is not None:
        token = given
    elif sys.stdin is not None and sys.stdin.isatty():
        token = ask("Manager token (input hidden): ", hidden=True)
    elif sys.stdin is not None:
        token = sys.stdin.readline()
    else:
        token = ""
    token = token.strip()
    if not token:
        raise UsageError(
            "no token given", "pass it after the URL, type it at the prompt, or pipe it on stdin"
        )
    if any(ch.isspace() for ch in token):
        raise UsageError("the token contains spaces", "paste exactly what `ocm-manager` printed")
    flaw = credentials.token_flaw(token)
    if flaw:
        raise UsageError(
            f"the token is malformed ({flaw})", "paste exactly what `ocm-manager` printed"
        )
    return token


def login(*, url: str, token: str | None, insecure_storage: bool, verify: bool) -> int:
    normalised = normalise_manager_url(url)
    state_mod.check_writable()
    secret = _read_token(token)
    ready = None
    if verify:
        from ocm.api import ManagerClient  # noqa: PLC0415 - http.client is not free to import

        with ManagerClient(normalised, secret, token_label="the given token") as client:
            try:
                ready = len(client.workspaces())
            except AuthError:
                raise AuthError(
                    f"token rejected by {normalised}, nothing was saved",
                    "check the token you were given, or ask the Manager's admin for the current"
                    " one (`ocm-manager token rotate` makes a new one, but signs out every other"
                    " user and browser)",
                ) from None
            except OcmError as exc:
                raise OcmError(f"{exc.what}, nothing was saved", exc.todo or "try again") from None
    saved = credentials.save_token(normalised, secret, insecure_storage=insecure_storage)
    previous = state_mod.load()
    fresh = (
        previous
        if previous.manager_url == normalised
        else (previous.without_last_repo().replace(manager_url=normalised))
    )
    state_mod.save(fresh.replace(keyring_backend=saved.source.keeper))
    summary = f"logged in to {normalised}; token saved in {saved.source.label}"
    if saved.file_reason:
        summary += f" (mode 0600; {saved.file_reason})"
    if ready is not None:
        summary += f"; {ready} repo{'s' if ready != 1 else ''} ready"
    elif not verify:
        summary += "; not verified (--no-verify)"
    note(summary)
    if os.environ.get(credentials.ENV_TOKEN, "").strip():
        note(f"{credentials.ENV_TOKEN} is set in this environment and overrides the saved token")
    if os.environ.get(URL_ENV, "").strip():
        note(f"{URL_ENV} is set in this environment and overrides this URL")
    return 0


def logout() -> int:
    current = state_mod.load()
    where = manager_url(current)
    if where is None:
        state_mod.clear()
        note("not logged in; nothing to remove")
    else:
        removed = credentials.delete_token(where.url, current.keyring_for(where.url))
        # OPENCODE_MANAGER_URL may name another Manager than the one logged in to: that
        # login (its URL, its last repo) is not this logout's to end.
        other = current.manager_url not in (None, where.url)
        if not other:
            state_mod.clear()
        summary = f"logged out of {where.url}; " + (
            f"token removed from {' and '.join(removed)}"
            if removed
            else "no token was stored for it"
        )
        if other:
            summary += f"; still logged in to {current.manager_url} (from state.json)"
        note(summary)
    # Whatever was stored, these still log this shell in: say so every time.
    if os.environ.get(credentials.ENV_TOKEN, "").strip():
        note(f"{credentials.ENV_TOKEN} is still set in this environment; unset it too")
    if os.environ.get(URL_ENV, "").strip():
        note(f"{URL_ENV} is still set in this environment; unset it too")
    return 0
