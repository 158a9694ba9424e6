"""The SQLite registry: repos, the token hash, console sign-ins and the last transfers.
The only module that speaks SQL."""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from manager.config import DataDirError

READY, CLONING, ERROR = "ready", "cloning", "error"
# SQLite integers are signed 64-bit; ids outside this range (from a URL) cannot exist.
SQLITE_MIN_INT, SQLITE_MAX_INT = -(1 << 63), (1 << 63) - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    branch TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    directory TEXT NOT NULL,
    origin_url TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    repo_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (repo_id, kind)
);
"""


@dataclass(frozen=True)
class Repo:
    id: int
    name: str
    branch: str
    status: str
    directory: Path
    origin_url: str
    error: str = ""

    def as_workspace(self) -> dict[str, object]:
        """The shape of ``GET /api/internal/opencode-workspaces`` (SPEC §4)."""
        return {
            "repoId": self.id,
            "name": self.name,
            "branch": self.branch,
            "cloneStatus": self.status,
            "directory": str(self.directory),
            "originUrl": self.origin_url,
        }


class NameTaken(Exception):
    """Raised when a repo with that name is already registered."""


class RegistryFull(Exception):
    """Raised when SQLite may not write the registry for want of disk; nothing was written.
    The message says which file, and SQLite's words."""


@contextlib.contextmanager
def _room(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        # SQLITE_FULL, "database or disk is full" (its code is named from Python 3.11 on).
        if "disk is full" not in str(exc):
            raise
        raise RegistryFull(f"its registry {path} could not be written ({exc})") from None


def _row_to_repo(row: sqlite3.Row) -> Repo:
    return Repo(
        id=row["id"],
        name=row["name"],
        branch=row["branch"],
        status=row["status"],
        directory=Path(row["directory"]),
        origin_url=row["origin_url"],
        error=row["error"],
    )


class Registry:
    """One SQLite file shared by the server's threads and the ``ocm-manager`` CLI.

    Each thread keeps its own connection (sqlite3 connections are not shared across
    threads), so a request costs a query, not a connect. WAL lets the CLI write while the
    server reads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            with self._connect() as conn:
                conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # garbage, truncated, a directory: not ours to fix
            raise DataDirError(
                f"{path} is not a usable SQLite database ({exc}); restore it from a backup, "
                f"or start an empty registry (`mv {path} {path}.broken && touch {path}`, "
                "then `ocm-manager token rotate`): the folders in "
                f"{path.parent / 'repos'} stay, and `ocm-manager repo add --name <new name> "
                "<folder>` adds each back"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection. A command done with the registry says so: a
        connection is freed only by Python's cycle collector (its statement cache points
        back at it), and until then it holds the database files open."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- token ------------------------------------------------------------------------------

    def token_hash(self) -> str | None:
        row = (
            self._connect().execute("SELECT value FROM meta WHERE key = 'token_sha256'").fetchone()
        )
        return row["value"] if row else None

    def set_token_hash(self, digest: str) -> None:
        self._connect().execute(
            "INSERT INTO meta (key, value) VALUES ('token_sha256', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (digest,),
        )

    def instance_id(self) -> str:
        """A random name of this Manager, made once and kept with its data dir: what tells
        its sign-in cookie from another Manager's on the same host name."""
        conn = self._connect()
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)",
            (secrets.token_hex(4),),
        )
        return str(conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0])

    # -- repos ------------------------------------------------------------------------------

    def list_repos(self, *, ready_only: bool = False) -> list[Repo]:
        sql = "SELECT * FROM repos" + (" WHERE status = 'ready'" if ready_only else "")
        return [_row_to_repo(r) for r in self._connect().execute(sql + " ORDER BY id")]

    def get_repo(self, repo_id: int) -> Repo | None:
        if not SQLITE_MIN_INT <= repo_id <= SQLITE_MAX_INT:
            return None  # no such row can exist, and sqlite3 would raise OverflowError
        row = self._connect().execute("SELECT * FROM repos WHERE id = ?", (repo_id,)).fetchone()
        return _row_to_repo(row) if row else None

    def find_repo(self, ref: str) -> Repo | None:
        """By id first, then exact name, then case-insensitive name (as ``ocm use``)."""
        if ref.isdigit():
            repo = self.get_repo(int(ref))
            if repo:
                return repo
        conn = self._connect()
        row = conn.execute("SELECT * FROM repos WHERE name = ?", (ref,)).fetchone()
        if row is None:
            rows = conn.execute(
                "SELECT * FROM repos WHERE lower(name) = lower(?)", (ref,)
            ).fetchall()
            row = rows[0] if len(rows) == 1 else None
        return _row_to_repo(row) if row else None

    def add_repo(
        self,
        *,
        name: str,
        directory: Path,
        origin_url: str,
        branch: str = "",
        status: str = CLONING,
    ) -> Repo:
        now = time.time()
        try:
            with _room(self.path):
                cursor = self._connect().execute(
                    "INSERT INTO repos (name, branch, status, directory, origin_url, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, branch, status, str(directory), origin_url, now, now),
                )
        except sqlite3.IntegrityError as exc:
            raise NameTaken(name) from exc
        repo = self.get_repo(int(cursor.lastrowid or 0))
        assert repo is not None
        return repo

    def update_repo(
        self,
        repo_id: int,
        *,
        status: str | None = None,
        branch: str | None = None,
        origin_url: str | None = None,
        error: str | None = None,
    ) -> None:
        fields = {"status": status, "branch": branch, "origin_url": origin_url, "error": error}
        changes = {k: v for k, v in fields.items() if v is not None}
        if not changes:
            return
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with _room(self.path):
            self._connect().execute(
                f"UPDATE repos SET {assignments}, updated_at = ? WHERE id = ?",
                (*changes.values(), time.time(), repo_id),
            )

    def set_directory(self, repo_id: int, directory: Path) -> None:
        self._connect().execute(
            "UPDATE repos SET directory = ?, updated_at = ? WHERE id = ?",
            (str(directory), time.time(), repo_id),
        )

    def remove_repo(self, repo_id: int) -> None:
        conn = self._connect()
        with _room(self.path):
            conn.execute("DELETE FROM repos WHERE id = ?", (repo_id,))
            conn.execute("DELETE FROM transfers WHERE repo_id = ?", (repo_id,))

    def mark_interrupted_clones(self) -> int:
        """Clones still 'cloning' at start-up were cut off by a crash: say so."""
        cursor = self._connect().execute(
            "UPDATE repos SET status = 'error', error = 'clone interrupted; remove the repo"
            " and add it again', updated_at = ? WHERE status = 'cloning'",
            (time.time(),),
        )
        return cursor.rowcount

    # -- console sign-ins (manager.web.signin) ------------------------------------------------

    def add_web_session(self, id_sha256: str, token_sha256: str, expires_at: float) -> None:
        conn = self._connect()
        conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (time.time(),))
        conn.execute(
            "INSERT INTO web_sessions (id_sha256, token_sha256, expires_at) VALUES (?, ?, ?)",
            (id_sha256, token_sha256, expires_at),
        )

    def web_session(self, id_sha256: str) -> tuple[str, float] | None:
        """``(token hash at sign-in, expiry)`` of a sign-in, or None."""
        row = (
            self._connect()
            .execute(
                "SELECT token_sha256, expires_at FROM web_sessions WHERE id_sha256 = ?",
                (id_sha256,),
            )
            .fetchone()
        )
        return (row["token_sha256"], row["expires_at"]) if row else None

    def live_web_sessions(self, token_sha256: str) -> dict[str, float]:
        """``{id hash: expiry}`` of the sign-ins made with ``token_sha256`` not expired yet."""
        rows = (
            self._connect()
            .execute(
                "SELECT id_sha256, expires_at FROM web_sessions"
                " WHERE token_sha256 = ? AND expires_at > ?",
                (token_sha256, time.time()),
            )
            .fetchall()
        )
        return {row["id_sha256"]: row["expires_at"] for row in rows}

    def remove_web_session(self, id_sha256: str) -> None:
        self._connect().execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (id_sha256,))

    # -- last push and pull per repo (the console shows them) --------------------------------

    def record_transfer(self, repo_id: int, kind: str, address: str) -> None:
        """Note that a ``kind`` ("push" or "pull") of ``repo_id`` from ``address`` finished."""
        with _room(self.path):
            self._connect().execute(
                "INSERT INTO transfers (repo_id, kind, at, address) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(repo_id, kind) DO UPDATE SET at = excluded.at,"
                " address = excluded.address",
                (repo_id, kind, time.time(), address),
            )

    def transfers(self) -> dict[int, dict[str, tuple[float, str]]]:
        """``{repo_id: {kind: (when, address)}}`` for every repo with a recorded transfer."""
        found: dict[int, dict[str, tuple[float, str]]] = {}
        for row in self._connect().execute("SELECT * FROM transfers"):
            found.setdefault(row["repo_id"], {})[row["kind"]] = (row["at"], row["address"])
        return found


def get_registry() -> Registry:
    """The registry of the app serving the current request."""
    from flask import current_app

    return current_app.extensions["ocm"].registry  # type: ignore[no-any-return]
