"""The Manager's settings and its data-dir layout (SPEC §4): one place for every path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5003
# Each open event stream holds a worker thread for its whole life (waitress), so the pool
# is sized for many streams plus ordinary requests (FIELD-NOTES: 150 streams cost ~37 KB each).
DEFAULT_THREADS = 64
DEFAULT_MAX_STREAMS = 200
DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024**3
DEFAULT_MAX_ARCHIVE_BYTES = 8 * 1024**3
# Git objects in one pushed pack: a first push carries the whole history (a repo with a
# long one has hundreds of thousands).
DEFAULT_MAX_ARCHIVE_MEMBERS = 5_000_000
# A client gets this long to send a request's head once it connects (or between requests,
# until it has shown the token); an answer it stops reading is cut after STALL_TIMEOUT.
DEFAULT_HEAD_TIMEOUT = 5.0
DEFAULT_STALL_TIMEOUT = 60.0

# What the Manager itself puts in its data dir. A folder holding anything else, and no
# database, belongs to someone else: `--data-dir ~` must not turn a home into a data dir.
DATABASE_NAME = "manager.db"
SERVE_LOCK_NAME = "serve.lock"
OWN_NAMES = frozenset(
    {
        DATABASE_NAME,
        f"{DATABASE_NAME}-journal",
        f"{DATABASE_NAME}-wal",
        f"{DATABASE_NAME}-shm",
        "repos",
        "staging",
        "logs",
        SERVE_LOCK_NAME,
        "quickstart.pid",  # scripts/quickstart writes it (and logs/) as the Manager starts
    }
)


class DataDirError(Exception):
    """Raised when the data dir cannot be used; the message is one line (what; what to do)."""


def default_data_dir() -> Path:
    """``$OCM_MANAGER_DATA_DIR``, else :func:`platform_data_dir`."""
    override = os.environ.get("OCM_MANAGER_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return platform_data_dir()


def platform_data_dir() -> Path:
    """platformdirs' user data dir for ``ocm-manager``: the data dir when nothing names one."""
    import platformdirs

    return Path(platformdirs.user_data_dir("ocm-manager", appauthor=False))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    threads: int = DEFAULT_THREADS
    # "managed": start our own `opencode serve`; "external": use opencode_url; "none": no proxy.
    opencode_mode: str = "managed"
    opencode_bin: str | None = None
    opencode_url: str | None = None
    opencode_password: str | None = None
    max_streams: int = DEFAULT_MAX_STREAMS
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES
    max_archive_members: int = DEFAULT_MAX_ARCHIVE_MEMBERS
    # OpenCode's web app listens here (manager.web.opencode_app); None: not served.
    web_app_port: int | None = None
    # The app's address as browsers reach it, when a TLS proxy publishes it elsewhere.
    web_app_url: str | None = None
    # The reverse proxy (its address) whose X-Forwarded-Proto/-For waitress believes, so the
    # console knows a browser came over HTTPS (Secure cookies) and from which address.
    trusted_proxy: str | None = None
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    stall_timeout: float = DEFAULT_STALL_TIMEOUT

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_NAME

    @property
    def serve_lock_path(self) -> Path:
        return self.data_dir / SERVE_LOCK_NAME

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def ensure_dirs(self) -> None:
        """Make the data dir and its folders, after checking it is (or may become) ours."""
        check_data_dir(self.data_dir)
        try:
            for path in (self.data_dir, self.repos_dir, self.staging_dir, self.logs_dir):
                path.mkdir(parents=True, exist_ok=True)
            # The data dir holds the token hash and every repo: keep other local users out.
            os.chmod(self.data_dir, 0o700)
        except OSError as exc:
            raise DataDirError(_unusable(self.data_dir, exc)) from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise DataDirError(
                f"cannot write to the data dir {self.data_dir}; pick a folder you can write to"
            )


def check_data_dir(data_dir: Path) -> None:
    """Refuse a data dir that is a file, or a folder of someone else's that is not empty."""
    if data_dir.is_dir():
        try:
            names = set(os.listdir(data_dir))
        except OSError as exc:
            raise DataDirError(_unusable(data_dir, exc)) from None
        if names and DATABASE_NAME not in names and not names <= OWN_NAMES:
            raise DataDirError(
                f"{data_dir} is not an ocm-manager data dir (it has no {DATABASE_NAME}) and"
                " not empty; pick a new or empty folder"
            )
    elif data_dir.exists():
        raise DataDirError(f"the data dir {data_dir} is a file; pick a folder")


def _unusable(data_dir: Path, exc: OSError) -> str:
    """The one line for a data dir that cannot be made or entered."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        blocker = next((p for p in (data_dir, *data_dir.parents) if p.is_file()), data_dir)
        return f"cannot make the data dir {data_dir}: {blocker} is a file; pick a folder"
    return (
        f"cannot use the data dir {data_dir}: {exc.strerror or exc}; pick a folder you can write to"
    )
