"""Adding and removing Manager repos: the git work behind ``ocm-manager repo``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from manager.registry import CLONING, ERROR, READY, NameTaken, Registry, Repo
from ocm.mirror.errors import Busy
from ocm.mirror.receive import repo_lock
from ocm.mirror.state import current_branch
from ocm.origin import hide_credentials, without_credentials
from ocm.repo_names import name_problem

# A repo's source or origin URL (or path): no remote needs more, and git cannot even be
# started with one argument over 128 KiB ("Argument list too long").
MAX_URL_CHARS = 4096
# Git's own lines are short, but the server's (``remote: ...``) may be megabytes on one line:
# kept whole, each read would re-scan all of it (minutes of CPU), and the page would carry it.
MAX_LINE = 4096


class RepoError(Exception):
    """Raised when a repo cannot be added or removed; the message is for a person."""


class RepoBusy(RepoError):
    """Raised when a repo cannot be removed because a push or pull of it is running."""


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def default_name(source: str) -> str:
    tail = without_credentials(source).rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail[:-4] if tail.endswith(".git") else tail


def valid_name(name: str) -> bool:
    """A name usable as a directory under ``repos/`` and never mistaken for an id."""
    return name_problem(name) is None


def check_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise RepoError(problem)
    return name


def _holds_repo(path: Path) -> bool:
    """What ``git clone <path>`` takes: a work tree with ``.git`` (a folder, or a file in a
    linked worktree), or a bare repo."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def _has_control_character(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def check_source(source: str, branch: str | None = None) -> None:
    """Refuse at once what git would refuse with a misleading message ("does not exist"),
    and a line break or other control character, which would forge lines in the log."""
    if not source.strip():
        raise RepoError("the source is empty; give a git URL or a path on the Manager to clone")
    if len(source) > MAX_URL_CHARS:
        raise RepoError(
            f"the source is longer than {MAX_URL_CHARS} characters; give its URL or path"
        )
    if _has_control_character(source):
        raise RepoError(
            "the source holds a line break or another control character; give it on one line"
        )
    if branch is not None and _has_control_character(branch):
        raise RepoError(
            "the branch holds a line break or another control character; give it on one line"
        )
    path = Path(source).expanduser()
    if path.is_file():
        raise RepoError(
            f"{path} is a file, not a git repository; give a repo's folder or a git URL"
        )
    if path.is_dir() and not _holds_repo(path):
        raise RepoError(
            f"{path} is not a git repository (no .git); give a repo's folder or a git URL"
        )


def origin_of_source(source: str) -> str:
    """The origin the laptops will have: a local source's own ``origin``, else the source.

    Registering a local mirror of ``git@host:org/x`` should match laptops cloned from
    ``git@host:org/x``, not from the Manager's private path.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        result = _git("remote", "get-url", "origin", cwd=path)
        if result.returncode == 0 and result.stdout.strip():
            return without_credentials(result.stdout.strip())
        return str(path.resolve())
    # git needs a password in the URL only for the clone; stored, it would show on every page.
    return without_credentials(source)


def clone_repo(
    registry: Registry,
    repos_dir: Path,
    source: str,
    *,
    name: str | None = None,
    branch: str | None = None,
) -> Repo:
    """Clone ``source`` into ``repos_dir/<name>`` and register it as ready.

    The row is 'cloning' while git runs, so the repo never shows as a workspace half-made.
    A failed or interrupted (Ctrl-C) clone leaves neither a row nor a directory behind.
    """
    repo = reserve_repo(registry, repos_dir, source, name=name, branch=branch)
    try:
        return run_clone(registry, repo, source, branch=branch)
    except BaseException:
        # KeyboardInterrupt included: left 'cloning', the row would block the name until the
        # next `serve`, and then read as a crash.
        discard(registry, repo)
        raise


def discard(registry: Registry, repo: Repo) -> None:
    """Forget a repo whose clone did not finish, with its partial directory."""
    shutil.rmtree(repo.directory, ignore_errors=True)
    registry.remove_repo(repo.id)


def reserve_repo(
    registry: Registry,
    repos_dir: Path,
    source: str,
    *,
    name: str | None,
    branch: str | None = None,
    name_option: str = "--name",
) -> Repo:
    """Check the source and the name, and register the repo as 'cloning' (``run_clone``
    fills it in). ``name_option`` is how the person gives a name, for the advice:
    ``--name`` on the command line, plain "name" on the console's page."""
    check_source(source, branch)
    name = check_name(name) if name is not None else _name_from(source, name_option)
    directory = repos_dir / name
    known = taken_by(registry, name, directory)
    if known is not None:  # its folder exists too, but moving that away would not help
        raise _taken(known, name_option)
    if directory.exists():
        raise RepoError(
            f"{directory} already exists; pick another {name_option} or move that folder away"
        )
    origin = origin_of_source(source)
    try:
        return registry.add_repo(name=name, directory=directory, origin_url=origin, status=CLONING)
    except NameTaken:
        raise _taken(name, name_option) from None


def _taken(name: str, name_option: str) -> RepoError:
    return RepoError(f"a repo named {name!r} already exists; pick another {name_option}")


def taken_by(registry: Registry, name: str, directory: Path) -> str | None:
    """The name of the repo already called ``name``, or whose folder ``directory`` is (on a
    file system that folds case, as a Mac's does, ``repos/PROJ`` is the folder of ``proj``:
    told it was a stray folder to move away, its owner might move a live repo); else None."""
    known = registry.find_repo(name)
    if known is None:
        return None
    if known.name == name:
        return name
    try:
        return known.name if os.path.samefile(directory, known.directory) else None
    except OSError:  # either folder is not there
        return None


def _name_from(source: str, name_option: str) -> str:
    name = default_name(source)
    if not name_problem(name):
        return name
    shown = hide_credentials(source)
    raise RepoError(f"{shown} gives no usable repo name ({name!r}); pick a {name_option}")


def run_clone(
    registry: Registry,
    repo: Repo,
    source: str,
    *,
    branch: str | None = None,
    keep_failed: bool = False,
    progress: Callable[[str], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> Repo:
    """Clone ``source`` into a reserved repo's directory; ready when done.

    On failure the directory goes; the row goes too, or with ``keep_failed`` stays with
    status 'error' and git's last line, for the console to show. ``progress`` gets git's
    progress lines ("Receiving objects:  45% ...") as they come, and ``started`` git's pid,
    which leads a process group of its own (to stop it with what it started).
    """
    local = Path(source).expanduser()
    clone_source = str(local.resolve()) if local.exists() else source
    # "--": a source from the console starting with "-" must never become an option.
    where = ["--", clone_source, str(repo.directory)]
    options = ["--branch", branch] if branch else []
    if progress is None:
        result = _git("clone", "--quiet", *options, *where)
        returncode, stderr = result.returncode, result.stderr
    else:
        report = progress

        def hidden(line: str) -> None:  # git's lines may name the URL, and the page shows them
            report(hide_credentials(line))

        returncode, stderr = _git_with_progress(
            ["clone", "--progress", *options, *where], hidden, started
        )
    if returncode != 0:
        shutil.rmtree(repo.directory, ignore_errors=True)
        message = (
            f"git clone failed: {hide_credentials(_last_line(stderr))}; check the source and"
            " that the Manager can reach it"
        )
        if keep_failed:
            registry.update_repo(repo.id, status=ERROR, error=message)
        else:
            registry.remove_repo(repo.id)
        raise RepoError(message)
    if repo.origin_url != source:  # the source's own origin, or the URL without its password
        _git("remote", "set-url", "origin", repo.origin_url, cwd=repo.directory)
    registry.update_repo(repo.id, status=READY, branch=current_branch(repo.directory) or "")
    updated = registry.get_repo(repo.id)
    assert updated is not None
    return updated


def _git_with_progress(
    args: list[str],
    progress: Callable[[str], None],
    started: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Run git, handing each progress line of its stderr (split at CR or LF) to ``progress``
    (and its pid to ``started``)."""
    from manager.opencode import death_signal_setup

    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    process = subprocess.Popen(
        ["git", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        # No controlling terminal: ssh must fail (into git's message on the page) rather
        # than ask the Manager's terminal about an unknown host key or a passphrase.
        start_new_session=True,
        # A Manager killed mid-clone must not leave git at work in repos/<name>: while the
        # server kept quiet it lived on past the restart that calls the clone interrupted,
        # and past the removal and new add that follow. SIGTERM lets git remove its partial
        # folder, as on Ctrl-C. This thread waits for git, so it outlives it, as
        # PR_SET_PDEATHSIG needs.
        preexec_fn=death_signal_setup(signal.SIGTERM),
    )
    assert process.stderr is not None
    if started is not None:
        started(process.pid)
    seen: list[str] = []
    pending = b""  # the start of a line not ended yet, at most MAX_LINE bytes of it
    while chunk := os.read(process.stderr.fileno(), 4096):
        # Only the new bytes are split: a line's start is never scanned again.
        *lines, rest = re.split(rb"[\r\n]", chunk)
        if lines:
            lines[0] = pending + lines[0]
            pending = b""
        pending = (pending + rest)[:MAX_LINE]
        for raw in lines:
            line = _shown_line(raw)
            if line:
                seen.append(line)
                progress(line)
        del seen[:-20]
    if line := _shown_line(pending):
        seen.append(line)
    return process.wait(), "\n".join(seen)


def _shown_line(raw: bytes) -> str:
    return raw[:MAX_LINE].decode("utf-8", "replace").strip()


def register_existing(
    registry: Registry, directory: Path, *, name: str, origin_url: str, branch: str
) -> Repo:
    """Register a directory that already holds the repo (``ocm push --create``)."""
    try:
        return registry.add_repo(
            name=check_name(name),
            directory=directory,
            origin_url=origin_url,
            branch=branch,
            status=READY,
        )
    except NameTaken:
        raise RepoError(f"a repo named {name!r} already exists") from None


def anchor_relative_directories(registry: Registry, repos_dir: Path) -> list[tuple[str, Path]]:
    """Give every repo registered with a relative folder its absolute one; the names and
    the folders they had. Such a row comes from a Manager that kept a relative --data-dir
    as typed, and it means the folder of another place for each process that reads it.
    Every repo's folder is ``repos/<name>`` of its data dir, so that is the one meant."""
    anchored = []
    for repo in registry.list_repos():
        if not repo.directory.is_absolute():
            registry.set_directory(repo.id, repos_dir / repo.name)
            anchored.append((repo.name, repo.directory))
    return anchored


@dataclass(frozen=True)
class Removed:
    """A removed repo and what became of its files: ``deleted`` (asked for), ``partial``
    (an unfinished clone, deleted), ``kept``, or ``none`` (there were none). ``left`` says
    why some of the files to delete are still there (``<path>: Permission denied``)."""

    repo: Repo
    files: Literal["deleted", "partial", "kept", "none"]
    left: str | None = None

    def advice(self) -> str | None:
        """What the person who removed it must still do, when files were left behind."""
        if self.left is None:
            return None
        return (
            f"could not delete all of its files ({self.left}); delete {self.repo.directory} as"
            f" a user allowed to (its owner, or root) before a repo named {self.repo.name} is"
            " added again"
        )


def remove_repo(registry: Registry, ref: str, *, delete_files: bool) -> Removed:
    repo = registry.find_repo(ref)
    if repo is None:
        raise RepoError(f"no repo {ref!r}; see `ocm-manager repo list`")
    if not (repo.directory / ".git").is_dir():
        return _remove(registry, repo, delete_files=delete_files)
    # Under the transfers' own lock: deleting the tree a push is switching left half a tree
    # and a 500, and a push that lands after the row is gone reports success to no repo.
    try:
        with repo_lock(repo.directory, "a push or pull"):
            return _remove(registry, repo, delete_files=delete_files)
    except Busy:
        raise RepoBusy(
            f"a push or pull of {repo.name} is in progress; remove it once that has finished"
        ) from None


def _remove(registry: Registry, repo: Repo, *, delete_files: bool) -> Removed:
    registry.remove_repo(repo.id)
    if not repo.directory.exists():
        return Removed(repo, "none")
    if delete_files:
        return Removed(repo, "deleted", _delete_tree(repo.directory))
    if repo.status != READY:
        # A clone that never finished holds no one's work, and its folder would make adding
        # the repo again under its name fail: "remove the repo and add it again" must work.
        return Removed(repo, "partial", _delete_tree(repo.directory))
    return Removed(repo, "kept")


def _delete_tree(directory: Path) -> str | None:
    """Delete ``directory``: None once it is gone, else the first thing that stopped it
    (``pgdata/PG_VERSION: Permission denied``: a file an agent's container left owned by
    root, say), for the person to fix. The rest is deleted all the same."""
    failures: list[str] = []

    def failed(_function: object, path: str, error: Any) -> None:
        exc = error[1] if isinstance(error, tuple) else error  # onerror's, or onexc's (3.12)
        if not isinstance(exc, FileNotFoundError):
            where = os.path.relpath(path, directory) if path != str(directory) else path
            failures.append(f"{where}: {getattr(exc, 'strerror', None) or exc}")

    handler: dict[str, Any] = {"onexc" if sys.version_info >= (3, 12) else "onerror": failed}
    shutil.rmtree(directory, **handler)
    return failures[0] if failures else None
