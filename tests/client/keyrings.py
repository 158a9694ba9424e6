"""Keyring backends for tests: they look real to ocm (priority 1), and keep nothing outside
tmp_path. Subprocesses load them with ``PYTHON_KEYRING_BACKEND=tests.client.keyrings.<Name>``
(``PYTHONPATH`` must contain the checkout).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

FILE_ENV = "OCM_TEST_KEYRING_FILE"


class MemoryKeyring(KeyringBackend):
    """In-process store, for ``keyring.set_keyring`` in tests that call ``main()``."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            raise PasswordDeleteError("not found")
        del self.items[(service, username)]


class FileKeyring(KeyringBackend):
    """A keyring shared between processes: a JSON file named by ``$OCM_TEST_KEYRING_FILE``."""

    priority = 1  # type: ignore[assignment]

    @property
    def _path(self) -> Path:
        return Path(os.environ[FILE_ENV])

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._path.read_text()))
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        items = self._load()
        items[f"{service}|{username}"] = password
        self._path.write_text(json.dumps(items))

    def delete_password(self, service: str, username: str) -> None:
        items = self._load()
        if items.pop(f"{service}|{username}", None) is None:
            raise PasswordDeleteError("not found")
        self._path.write_text(json.dumps(items))


class BrokenKeyring(KeyringBackend):
    """A backend that looks real but fails every call (a locked or crashing keychain)."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("the keychain is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("the keychain is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringError("the keychain is locked")
