"""Clones started from the console run in the background; their progress lives here.

The registry row says 'cloning', then 'ready' or 'error' (with git's message); the last
progress line of a running clone is only in memory, since it matters only while it runs.
A running clone can be stopped (the console's Remove…): git has no time limit of its own,
and a server that never answers would otherwise hold the row at 'cloning' until a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from manager.registry import Registry
from manager.repos import RepoError, remove_repo, reserve_repo, run_clone
from ocm.origin import hide_credentials

log = logging.getLogger("manager.web")

STOP_WAIT = 10.0  # seconds a removal waits for a stopped git to be gone


@dataclass
class _Job:
    progress: str = "starting git clone"
    pid: int | None = None  # git's, which leads its own process group
    stopped: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class CloneJobs:
    def __init__(self, ended: Callable[[], None] = lambda: None) -> None:
        """``ended`` is called when a clone's row has its final state (or is gone)."""
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._ended = ended

    def progress(self, repo_id: int) -> str:
        with self._lock:
            job = self._jobs.get(repo_id)
            return job.progress if job else ""

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
        job = _Job()
        with self._lock:
            self._jobs[repo.id] = job

        def note(line: str) -> None:
            with self._lock:
                job.progress = line

        def started(pid: int) -> None:
            with self._lock:
                job.pid = pid
                stop = job.stopped
            if stop:  # stopped before git began
                _end(pid)

        def clone() -> None:
            try:
                run_clone(
                    registry,
                    repo,
                    source,
                    branch=branch,
                    keep_failed=True,
                    progress=note,
                    started=started,
                )
                log.info("console: cloned %s into %s", shown, repo.directory)
            except RepoError as exc:
                if not job.stopped:
                    log.warning("console: clone of %s failed: %s", shown, exc)
            except Exception:
                log.exception("console: clone of %s failed", shown)
                registry.update_repo(repo.id, status="error", error="clone failed; see the log")
            finally:
                if job.stopped:
                    log.info("console: stopped the clone of %s and removed %s", shown, repo.name)
                    with contextlib.suppress(RepoError):
                        remove_repo(registry, str(repo.id), delete_files=True)
                with self._lock:
                    self._jobs.pop(repo.id, None)
                self._ended()
                job.done.set()

        threading.Thread(target=clone, name=f"clone-{repo.name}", daemon=True).start()
        return repo.id

    def stop(self, repo_id: int) -> bool:
        """Stop the clone of ``repo_id`` and remove the repo with its partial folder, waiting
        (a while) until that is done; False when this Manager runs no clone of it."""
        with self._lock:
            job = self._jobs.get(repo_id)
            if job is None:
                return False
            job.stopped = True
            pid = job.pid
        if pid is not None:
            _end(pid)
        job.done.wait(STOP_WAIT)
        return True


def _end(pid: int) -> None:
    """End git and the helpers it started (``git-remote-https``, ``ssh``): its group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
