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

SERVE_LOCK_NAME = "serve.lock"


class DataDirError(Exception):
    """Raised when the data dir cannot be used; the message is one line (what; what to do)."""


def default_data_dir() -> Path:
    """``$OCM_MANAGER_DATA_DIR``, else platformdirs' user data dir for ``ocm-manager``."""
    override = os.environ.get("OCM_MANAGER_DATA_DIR")
    if override:
        return Path(override).expanduser()
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
        return self.data_dir / "manager.db"

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
        for path in (self.data_dir, self.repos_dir, self.staging_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        # The data dir holds the token hash and every repo: keep other local users out.
        os.chmod(self.data_dir, 0o700)
