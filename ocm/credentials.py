"""Where the Manager token lives (SPEC §2), and the only module that touches ``keyring``.

Stores, in lookup order: env ``OCM_TOKEN`` (read-only), the OS keyring (only a real backend:
not fail, null, plaintext, or a chainer with nothing real in it), ``credentials.json`` (0600
in a 0700 dir, atomic). ``ocm login`` keeps a token in exactly one store and removes it from
the other, so the file is read before the keyring is consulted: the answer is the same, and
the ~200 ms that importing ``keyring`` costs is only paid when the token really is there.
``ocm login`` remembers which keyring backend took the token (``state.json``, the user's own
file, naming a class as keyring's own ``keyringrc.cfg`` does), and later commands load that
one first, skipping keyring's import and ranking of every backend (60-100 ms).

Any exception from a keyring backend degrades to the file; a broken keyring never stops
``ocm``. Every :class:`TokenSource` carries a label naming its store for messages.
"""

from __future__ import annotations

import contextlib
import json
import os

from ocm import paths
from ocm.errors import OcmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

SERVICE = "opencode-manager"
ENV_TOKEN = "OCM_TOKEN"

STORE_ENV = "env"
STORE_KEYRING = "keyring"
STORE_FILE = "file"

_CHAINER = "keyring.backends.chainer.ChainerBackend"
# Backends that exist but do not keep a secret safely (or at all).
_NOT_REAL = {
    "keyring.backends.fail.Keyring",
    "keyring.backends.null.Keyring",
    "keyrings.alt.file.PlaintextKeyring",
}


class TokenSource:
    """A token and the store it came from (or went to)."""

    __slots__ = ("token", "store", "label", "keeper")

    def __init__(self, token: str, store: str, label: str, keeper: str | None = None) -> None:
        self.token = token
        self.store = store  # STORE_ENV, STORE_KEYRING or STORE_FILE
        self.label = label  # names the store in messages
        # In the keyring: the class of the backend that keeps it, for state.json to record.
        self.keeper = keeper

    def __repr__(self) -> str:  # never print the token by accident
        return f"TokenSource(store={self.store!r}, label={self.label!r})"

    def problem(self) -> str | None:
        """Why this token cannot be sent in an HTTP header, or None; never shows the token."""
        flaw = token_flaw(self.token)
        return f"the token from {self.label} is malformed ({flaw})" if flaw else None

    def renewal(self, url: str) -> str:
        """What to do when the Manager at ``url`` rejects this token."""
        if self.store == STORE_ENV:  # `ocm login` would not help: the variable wins
            return (
                f"set {ENV_TOKEN} to the Manager's current token, or unset it to use the one "
                "`ocm login` saved"
            )
        return f"run `ocm login {url}` with a current token"

    def checked(self) -> TokenSource:
        """This source, or an error saying the token is malformed and how to replace it."""
        problem = self.problem()
        if problem is None:
            return self
        if self.store == STORE_ENV:
            todo = f"set {ENV_TOKEN} to exactly the token `ocm-manager` printed, or unset it"
        else:
            todo = "run `ocm login <url>` again with the token `ocm-manager` printed"
        raise OcmError(problem, todo)


def token_flaw(token: str) -> str | None:
    """What makes ``token`` unusable as a header value, in a few words; None when it is fine.

    Manager tokens are printable ASCII without spaces; anything else (a newline from a
    pasted line, a control character, a non-ASCII letter) would fail only deep inside the
    HTTP library, as "cannot reach the Manager".
    """
    for char in token:
        if char == "\n" or char == "\r":
            return "it contains a line break"
        if char.isspace():
            return "it contains a space"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return "it contains a control character"
        if ord(char) > 0x7E:
            return "it contains a non-ASCII character"
    return None


def env_label() -> str:
    return f"the {ENV_TOKEN} environment variable"


def file_label() -> str:
    return str(paths.credentials_file())


# ---------------------------------------------------------------- keyring


def _class_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_real(backend: Any) -> bool:
    name = _class_name(backend)
    if name in _NOT_REAL or "plaintext" in name.lower():
        return False
    if name == _CHAINER:
        return any(_is_real(member) for member in backend.backends)
    try:
        return float(backend.priority) > 0
    except Exception:  # a priority that raises means "not viable"
        return False


def real_keyring() -> Any | None:
    """The OS keyring backend, or None when there is no real one (or it fails to load)."""
    try:
        import keyring  # noqa: PLC0415 - costs ~200 ms; only when a token may be there

        backend = keyring.get_keyring()
        return backend if _is_real(backend) else None
    except Exception:
        return None


def _pinned_keyring(name: str) -> Any | None:
    """The backend ``ocm login`` saved the token in, loaded by its class name without
    keyring's discovery; None when ``PYTHON_KEYRING_BACKEND`` chooses (keyring's own
    override wins) or it no longer loads."""
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return None
    try:
        import keyring.core  # noqa: PLC0415 - as in real_keyring

        backend = keyring.core.load_keyring(name)
        return backend if _is_real(backend) else None
    except Exception:
        return None


def _keyrings(pinned: str | None) -> Iterator[Any]:
    """The pinned backend, then keyring's own choice when that is another one (only looked
    for when the caller goes on: a token found in the pinned one ends the search)."""
    first = _pinned_keyring(pinned) if pinned else None
    if first is not None:
        yield first
    chosen = real_keyring()
    if chosen is not None and (first is None or _class_name(chosen) != _class_name(first)):
        yield chosen


def _holder(backend: Any, url: str, token: str) -> str | None:
    """The class of the backend that keeps ``token``, to be loaded directly next time: behind
    a chainer, the member that has it (loading a chainer would be a discovery again)."""
    if _class_name(backend) != _CHAINER:
        return _class_name(backend)
    for member in backend.backends:
        with contextlib.suppress(Exception):
            if member.get_password(SERVICE, url) == token:
                return _class_name(member)
    return None


def keyring_label(backend: Any) -> str:
    name = getattr(backend, "name", None) or type(backend).__name__
    return f"the OS keyring ({name})"


def _keyring_get(url: str, pinned: str | None) -> TokenSource | None:
    for backend in _keyrings(pinned):
        try:
            token = backend.get_password(SERVICE, url)
        except Exception:
            continue
        if token:
            keeper = _holder(backend, url, token)
            return TokenSource(token, STORE_KEYRING, keyring_label(backend), keeper)
    return None


def _keyring_delete(url: str, pinned: str | None) -> str | None:
    """Remove the keyring entry; the store's label when something was removed."""
    for backend in _keyrings(pinned):
        try:
            if not backend.get_password(SERVICE, url):
                continue
            backend.delete_password(SERVICE, url)
        except Exception:
            continue
        return keyring_label(backend)
    return None


# ---------------------------------------------------------------- file


def exposure(path: Path | None = None) -> str | None:
    """Why credentials.json cannot be trusted to be private, or None (also when absent).

    As ssh does with a private key: a file that others can read, or that is not ours, or a
    directory that others can write to (where the file could be swapped), is refused.
    """
    path = path or paths.credentials_file()
    try:
        info = os.stat(path)
    except OSError:
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and info.st_uid != uid:
        return "it belongs to another user"
    if info.st_mode & 0o077:
        return f"it is open to other users (mode {info.st_mode & 0o777:04o})"
    try:
        parent = os.stat(path.parent)
    except OSError:
        return None
    if parent.st_mode & 0o022:
        return (
            f"its folder is writable by other users (mode {parent.st_mode & 0o777:04o}), so"
            " someone else could replace it"
        )
    return None


def exposure_todo(path: Path | None = None) -> str:
    path = path or paths.credentials_file()
    return (
        f"if no one else could have read it, run `chmod 600 {path}` and `chmod 700 "
        f"{path.parent}`; otherwise rotate the token (`ocm-manager token rotate`) and run "
        "`ocm login <url>` with the new one"
    )


def _read_file(*, trusted_only: bool = False) -> dict[str, str]:
    """URL → token from credentials.json; anything unreadable counts as empty.

    ``trusted_only`` (when a token is about to be used): refuse a file others can read.
    Writers skip the check, since writing it (``ocm login``) makes it private again.
    """
    path = paths.credentials_file()
    if not path.is_absolute():  # a relative OCM_CONFIG_DIR: nothing of this folder's is ours
        return {}
    _refuse_a_directory(path)
    if trusted_only:
        problem = exposure(path)
        if problem:
            raise OcmError(f"refusing to use the token in {path}: {problem}", exposure_todo(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        return {}
    return {url: tok for url, tok in tokens.items() if isinstance(tok, str) and tok}


def _refuse_a_directory(path: Path) -> None:
    """A directory named credentials.json can be neither read nor replaced (``os.replace``
    onto it fails): say so, rather than "no token" and a login that cannot save one."""
    if os.path.isdir(path):
        raise OcmError(
            f"{path} is a directory, not ocm's credentials file",
            f"remove it (`rm -r {path}`) and run `ocm login <url>`",
        )


def _write_file(tokens: dict[str, str]) -> None:
    path = paths.credentials_file()
    if not tokens:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    from ocm.fsutil import atomic_write_text  # noqa: PLC0415 - tempfile only when writing

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The directory is ours: tighten it so a file name is not even listable by others.
        os.chmod(path.parent, 0o700)
        atomic_write_text(
            path, json.dumps({"version": 1, "tokens": tokens}, indent=2) + "\n", mode=0o600
        )
    except OSError as exc:  # a full disk's write said "cannot write the output" in main
        from ocm.state import cannot_write  # noqa: PLC0415 - only when failing

        raise cannot_write(path, exc) from None


# ---------------------------------------------------------------- public API


def find_token(url: str | None, pinned: str | None = None) -> TokenSource | None:
    """The token for ``url``: ``OCM_TOKEN``, else credentials.json, else the OS keyring
    (``pinned``, the backend class ``ocm login`` saved it with, is asked first)."""
    env = os.environ.get(ENV_TOKEN, "").strip()
    if env:
        return TokenSource(env, STORE_ENV, env_label())
    if not url:
        return None
    stored = _read_file(trusted_only=True).get(url)
    if stored:
        return TokenSource(stored, STORE_FILE, file_label())
    return _keyring_get(url, pinned)


class SaveResult:
    """Where :func:`save_token` put the token, and why the file if it was the file."""

    __slots__ = ("source", "file_reason")

    def __init__(self, source: TokenSource, file_reason: str | None = None) -> None:
        self.source = source
        self.file_reason = file_reason


def save_token(url: str, token: str, *, insecure_storage: bool = False) -> SaveResult:
    """Store ``token`` for ``url`` in the keyring if a real one works, else in the file.

    The other store loses its entry for ``url``, so exactly one holds it.
    """
    reason: str | None
    if insecure_storage:
        reason = "--insecure-storage was given"
    else:
        backend = real_keyring()
        reason = "no system keyring is available"
        if backend is not None:
            try:
                backend.set_password(SERVICE, url, token)
                if backend.get_password(SERVICE, url) != token:
                    raise RuntimeError("the keyring did not keep the token")
            except Exception as exc:
                reason = f"the system keyring failed ({exc.__class__.__name__})"
            else:
                tokens = _read_file()
                if tokens.pop(url, None) is not None:
                    _write_file(tokens)
                keeper = _holder(backend, url, token)
                return SaveResult(TokenSource(token, STORE_KEYRING, keyring_label(backend), keeper))
    tokens = _read_file()
    tokens[url] = token
    _write_file(tokens)
    _keyring_delete(url, None)
    return SaveResult(TokenSource(token, STORE_FILE, file_label()), reason)


def delete_token(url: str, pinned: str | None = None) -> list[str]:
    """Remove the token for ``url`` from every store ocm writes; labels of those that had it."""
    removed: list[str] = []
    tokens = _read_file()
    if tokens.pop(url, None) is not None:
        _write_file(tokens)
        removed.append(file_label())
    label = _keyring_delete(url, pinned)
    if label:
        removed.append(label)
    return removed
