"""Clones started from the console run in the background; their progress lives here.

The registry row says 'cloning', then 'ready' or 'error' (with git's message); the last
progress line of a running clone is only in memory, since it matters only while it runs.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from manager.registry import Registry
from manager.repos import RepoError, reserve_repo, run_clone
from ocm.origin import hide_credentials

log = logging.getLogger("manager.web")


class CloneJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[int, str] = {}

    def progress(self, repo_id: int) -> str:
        with self._lock:
            return self._progress.get(repo_id, "")

    def start(
        self,
        registry: Registry,
        repos_dir: Path,
        source: str,
        *,
        name: str | None,
        branch: str | None,
    ) -> int:
        """Register the repo now (RepoError for a bad source or name), clone it in a thread;
        its id."""
        repo = reserve_repo(
            registry, repos_dir, source, name=name, branch=branch, name_option="name"
        )
        shown = hide_credentials(source)  # the log is on the Health page
        with self._lock:
            self._progress[repo.id] = "starting git clone"

        def note(line: str) -> None:
            with self._lock:
                self._progress[repo.id] = line

        def clone() -> None:
            try:
                run_clone(registry, repo, source, branch=branch, keep_failed=True, progress=note)
                log.info("console: cloned %s into %s", shown, repo.directory)
            except RepoError as exc:
                log.warning("console: clone of %s failed: %s", shown, exc)
            except Exception:
                log.exception("console: clone of %s failed", shown)
                registry.update_repo(repo.id, status="error", error="clone failed; see the log")
            finally:
                with self._lock:
                    self._progress.pop(repo.id, None)

        threading.Thread(target=clone, name=f"clone-{repo.name}", daemon=True).start()
        return repo.id
