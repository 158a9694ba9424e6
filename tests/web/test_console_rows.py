"""The Repos page's rows are computed once for every tab (manager.web.shared_rows), and
what the console itself changes shows at the next poll."""

from __future__ import annotations

import os
import shlex
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.git import write_files
from tests.support.processes import RunningManager
from tests.support.proctree import wait_until
from tests.web.conftest import cookie_name


def recording_git(folder: Path, log: Path, hold: Path) -> dict[str, str]:
    """An environment whose ``git`` notes each ``status`` in ``log`` and starts it only once
    ``hold`` is gone, then runs the real git; everything else goes straight to git."""
    real = shutil.which("git")
    assert real, "git is part of the test set-up"
    folder.mkdir()
    script = folder / "git"
    script.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '  if [ "$arg" = status ]; then\n'
        f"    echo status >> {shlex.quote(str(log))}\n"
        f"    while [ -e {shlex.quote(str(hold))} ]; do sleep 0.05; done\n"
        "    break\n"
        "  fi\n"
        "done\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def signed_in(manager: RunningManager) -> dict[str, str]:
    """A browser's sign-in cookie, as a jar for requests."""
    answer = requests.post(
        manager.url + "/signin",
        data={"token": manager.token},
        headers={"Origin": manager.url},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    return {cookie_name(manager): str(answer.cookies[cookie_name(manager)])}


def rows(manager: RunningManager, jar: dict[str, str]) -> list[dict[str, Any]]:
    """What a tab's poll gets: the JSON twin of the Repos page."""
    answer = requests.get(manager.url + "/repos?format=json", cookies=jar, timeout=60)
    assert answer.ok, answer.text
    listed: list[dict[str, Any]] = answer.json()["repos"]
    return listed


def changes(listed: list[dict[str, Any]], name: str) -> int | None:
    return next(row["uncommittedChanges"] for row in listed if row["name"] == name)


def test_tabs_polling_at_once_share_one_computation_of_the_rows(
    manager_factory: Callable[..., RunningManager], tmp_path: Path, git_repo: Callable[..., Path]
) -> None:
    log, hold = tmp_path / "git-status.log", tmp_path / "hold"
    manager = manager_factory("--no-opencode", env=recording_git(tmp_path / "bin", log, hold))
    manager.cli("repo", "add", str(git_repo("app")))
    jar = signed_in(manager)
    answers: list[list[dict[str, Any]]] = []

    def poll() -> None:
        answers.append(rows(manager, jar))

    hold.touch()
    first = threading.Thread(target=poll)
    first.start()
    assert wait_until(log.exists), manager.log()  # its rows are being computed: git is held
    second = threading.Thread(target=poll)
    second.start()
    hold.unlink()
    first.join()
    second.join()
    assert log.read_text().splitlines() == ["status"], "the second tab computed the rows again"
    assert answers[0] == answers[1]
    assert changes(answers[0], "app") == 0

    # Shared for a while, not for good: a change made on the Manager's copy shows later.
    write_files(manager.data_dir / "repos" / "app", {"notes.txt": "draft\n"})
    assert wait_until(lambda: changes(rows(manager, jar), "app") == 1, timeout=30)


def test_a_repo_added_or_removed_on_the_console_shows_at_the_next_poll(
    manager: RunningManager, git_repo: Callable[..., Path]
) -> None:
    manager.cli("repo", "add", str(git_repo("app")))
    jar = signed_in(manager)
    assert changes(rows(manager, jar), "app") == 0
    # Made behind the console's back: the next poll still has the rows computed before.
    write_files(manager.data_dir / "repos" / "app", {"notes.txt": "draft\n"})
    assert changes(rows(manager, jar), "app") == 0

    # Added on the console: the next poll has it (and the rows are computed anew).
    form = {"Origin": manager.url, "Accept": "application/json"}
    added = requests.post(
        manager.url + "/repos",
        data={"source": str(git_repo("lib")), "name": "", "branch": ""},
        headers=form,
        cookies=jar,
        timeout=10,
    )
    assert added.status_code == 202, added.text
    listed = rows(manager, jar)
    assert [row["name"] for row in listed] == ["app", "lib"]
    assert changes(listed, "app") == 1

    assert wait_until(lambda: changes(rows(manager, jar), "lib") == 0, timeout=60)
    removed = requests.post(
        f"{manager.url}/repos/{added.json()['id']}/remove",
        data={"confirm": "yes"},
        headers=form,
        cookies=jar,
        timeout=30,
    )
    assert removed.status_code == 200, removed.text
    assert [row["name"] for row in rows(manager, jar)] == ["app"]
