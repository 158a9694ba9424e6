"""``state.json``: which Manager this laptop talks to and which repo it used last (SPEC §2).

A missing, empty or corrupt file means "not logged in"; reading never raises. Writes are
atomic (temp file + rename), so a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import json
import time

from ocm import paths
from ocm.errors import OcmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


class State:
    """What state.json holds. A plain class: ``dataclasses`` costs ~12 ms to import, and
    ``ocm status`` must start fast."""

    __slots__ = (
        "manager_url",
        "last_repo_id",
        "last_repo_name",
        "last_repo_dir",
        "last_repo_branch",
        "keyring_backend",
        "updated_at",
        "problem",
        "problem_todo",
    )

    def __init__(
        self,
        *,
        manager_url: str | None = None,
        last_repo_id: int | None = None,
        last_repo_name: str | None = None,
        last_repo_dir: str | None = None,
        last_repo_branch: str | None = None,
        keyring_backend: str | None = None,
        updated_at: str | None = None,
        problem: str | None = None,
        problem_todo: str | None = None,
    ) -> None:
        self.manager_url = manager_url
        self.last_repo_id = last_repo_id
        self.last_repo_name = last_repo_name
        self.last_repo_dir = last_repo_dir
        self.last_repo_branch = last_repo_branch
        # The keyring backend class that ``ocm login`` saved manager_url's token in.
        self.keyring_backend = keyring_backend
        self.updated_at = updated_at
        # Why the file could not be used (shown by ``ocm status``); None if fine or absent.
        self.problem = problem
        self.problem_todo = problem_todo  # what to do about it, when not `ocm login` alone

    def replace(self, **changes: Any) -> State:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return State(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__
        )

    def __repr__(self) -> str:
        return "State(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def keyring_for(self, url: str) -> str | None:
        """The keyring backend that holds the token for ``url``, when login recorded it."""
        return self.keyring_backend if url == self.manager_url else None

    @property
    def has_last_repo(self) -> bool:
        return self.last_repo_id is not None

    def with_last_repo(self, repo_id: int, name: str, directory: str, branch: str) -> State:
        return self.replace(
            last_repo_id=repo_id,
            last_repo_name=name,
            last_repo_dir=directory,
            last_repo_branch=branch,
        )

    def without_last_repo(self) -> State:
        return self.replace(
            last_repo_id=None, last_repo_name=None, last_repo_dir=None, last_repo_branch=None
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "managerUrl": self.manager_url,
            "lastRepoId": self.last_repo_id,
            "lastRepoName": self.last_repo_name,
            "lastRepoDir": self.last_repo_dir,
            "lastRepoBranch": self.last_repo_branch,
            "keyringBackend": self.keyring_backend,
            "updatedAt": self.updated_at,
        }


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    # bool is an int in Python; a true/false repo id is as wrong as a string.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load() -> State:
    """The saved state; an empty ``State`` (with ``problem`` set if unreadable) otherwise."""
    path = paths.state_file()
    flaw = None if path.is_absolute() else paths.config_dir_flaw()
    if flaw:  # a relative OCM_CONFIG_DIR: read nothing from the folder this runs in
        return State(problem=flaw[0], problem_todo=flaw[1])
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State()
    except NotADirectoryError:
        flaw = paths.config_dir_flaw()
        if flaw:
            return State(problem=flaw[0], problem_todo=flaw[1])
        return State(problem=f"{path} is unreadable (not a directory)")
    except IsADirectoryError:
        # `ocm login` cannot replace a directory: it goes first.
        return State(
            problem=f"{path} is a directory, not ocm's state file",
            problem_todo=f"remove it (`rm -r {path}`) and run `ocm login <url>`",
        )
    except PermissionError:
        return State(problem=f"{path} is not readable (permission denied)")
    except OSError as exc:
        return State(problem=f"{path} is unreadable ({exc.strerror or exc.__class__.__name__})")
    except UnicodeDecodeError:
        return State(problem=f"{path} is not UTF-8 text")
    if not raw.strip():
        return State(problem=f"{path} is empty")
    try:
        data = json.loads(raw)
    except ValueError:
        return State(problem=f"{path} is not valid JSON")
    if not isinstance(data, dict):
        return State(problem=f"{path} does not hold a JSON object")
    return State(
        manager_url=_text(data, "managerUrl"),
        last_repo_id=_int(data, "lastRepoId"),
        last_repo_name=_text(data, "lastRepoName"),
        last_repo_dir=_text(data, "lastRepoDir"),
        last_repo_branch=_text(data, "lastRepoBranch"),
        keyring_backend=_text(data, "keyringBackend"),
        updated_at=_text(data, "updatedAt"),
    )


def save(state: State) -> State:
    """Write ``state`` atomically, stamping ``updatedAt``; returns what was written."""
    from ocm.fsutil import atomic_write_text  # noqa: PLC0415 - tempfile only when writing

    stamped = state.replace(
        problem=None,
        problem_todo=None,
        updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    path = paths.state_file()
    try:
        atomic_write_text(path, json.dumps(stamped.to_json(), indent=2) + "\n", mode=0o600)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return stamped


def check_writable() -> None:
    """Raise before anything else is saved when state.json could not be written anyway."""
    flaw = paths.config_dir_flaw()
    if flaw:
        raise OcmError(*flaw)
    path = paths.state_file()
    if path.is_dir():
        raise _unwritable(path, IsADirectoryError(21, "Is a directory"))


def _unwritable(path: Path, exc: OSError) -> OcmError:
    flaw = paths.config_dir_flaw()
    if flaw:
        return OcmError(*flaw)
    if path.is_dir():
        return OcmError(
            f"cannot write {path}: it is a directory, not ocm's state file",
            f"remove it (`rm -r {path}`) and try again",
        )
    return cannot_write(path, exc)


def cannot_write(path: Path, exc: OSError) -> OcmError:
    """The line for a file of ocm's config folder (``path``) that could not be written: a
    full disk is for freeing space on it, anything else for the folder's permissions."""
    from ocm.mirror.errors import NO_ROOM  # noqa: PLC0415 - only when failing

    if exc.errno in NO_ROOM:
        todo = (
            f"free some space on the disk of {path.parent}, or set OCM_CONFIG_DIR to a folder "
            "on another disk"
        )
    else:
        todo = f"check the permissions of {path.parent}, or set OCM_CONFIG_DIR to another folder"
    return OcmError(f"cannot write {path} ({exc.strerror or exc.__class__.__name__})", todo)


def clear() -> bool:
    """Remove ``state.json``; True when there was one."""
    path = paths.state_file()
    if not path.is_absolute():  # a relative OCM_CONFIG_DIR: that file is not ocm's
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return True
