"""What ``ocm use`` / bare ``ocm`` exec: argv and environment, checked through a recording
``opencode`` on PATH; the warm-up request; ``opencode`` missing or overridden."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

from ocm import __version__
from tests.client import standin
from tests.client.conftest import AddedRepo, Recorder, assert_one_error, run_ocm
from tests.support.processes import RunningManager


def test_use_execs_exactly_opencode_attach_with_the_token_only_in_the_environment(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder
) -> None:
    repo = add_repo("widget", origin="git@github.com:acme/widget.git")
    result = run_ocm("use", "widget")
    assert result.returncode == 0, result.stderr
    call = recorder.read()
    assert call["argv"] == [
        str(recorder.path),
        "attach",
        f"{login.url}/api/opencode-proxy",
        "--dir",
        repo.directory,
        "--username",
        "opencode",
    ]
    assert call["env"]["OPENCODE_SERVER_PASSWORD"] == login.token
    assert call["env"]["OCM_REMOTE_MANAGER_URL"] == login.url
    assert call["env"]["OCM_REMOTE_REPO_NAME"] == "widget"
    assert not any(login.token in arg for arg in call["argv"])
    assert login.token not in result.stdout + result.stderr
    assert f"attaching to #{repo.repo_id} widget" in result.stderr


def test_use_by_id_remembers_the_repo_as_last(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    add_repo("first")
    second = add_repo("second", branch="trunk")
    assert run_ocm("use", str(second.repo_id)).returncode == 0
    state = json.loads((tmp_path / "home/.config/opencode-manager/state.json").read_text())
    assert state["managerUrl"] == login.url
    assert (
        state["lastRepoId"],
        state["lastRepoName"],
        state["lastRepoDir"],
        state["lastRepoBranch"],
    ) == (second.repo_id, "second", second.directory, "trunk")
    status = json.loads(run_ocm("status", "--json").stdout)
    assert status["lastRepo"]["repoId"] == second.repo_id


def test_use_unknown_name_or_id_fails_without_exec_or_state_change(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    add_repo("known")
    state_file = tmp_path / "home/.config/opencode-manager/state.json"
    before = state_file.read_bytes()
    assert_one_error(run_ocm("use", "unknown"), 1, "no ready repo 'unknown'", "ocm list")
    assert_one_error(run_ocm("use", "4242"), 1, "no ready repo '4242'", "ocm list")
    assert not recorder.called()
    assert state_file.read_bytes() == before


def test_opencode_missing_fails_with_the_install_hint_and_only_ocm_use_remembers(
    login: RunningManager,
    add_repo: Callable[..., AddedRepo],
    git_repo: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """``ocm use`` is the advice push and pull give among several repos of one origin, so
    it remembers its pick even where no TUI can attach; bare ``ocm`` then saves nothing."""
    widget = add_repo("widget")
    add_repo("other", origin="https://example.invalid/acme/other.git")
    checkout = git_repo("laptop", origin="https://example.invalid/acme/other.git")
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    git_dir = Path(shutil.which("git") or "/usr/bin/git").parent
    no_opencode = {"PATH": f"{empty_bin}:{git_dir}"}
    state_file = tmp_path / "home/.config/opencode-manager/state.json"

    result = run_ocm("use", "widget", env=no_opencode)
    assert_one_error(
        result,
        1,
        "cannot find `opencode`",
        f"(#{widget.repo_id} widget is remembered as the last used repo, for `ocm push` and "
        "`ocm pull`)",
        "npm i -g opencode-ai",
    )
    assert json.loads(state_file.read_text())["lastRepoId"] == widget.repo_id

    before = state_file.read_bytes()
    result = run_ocm(cwd=checkout, env=no_opencode)
    assert_one_error(result, 1, "cannot find `opencode`", "npm i -g opencode-ai")
    assert "remembered" not in result.stderr
    assert state_file.read_bytes() == before
    bad = run_ocm(cwd=checkout, env={"OCM_OPENCODE_BIN": str(tmp_path / "nope")})
    assert_one_error(bad, 1, "OCM_OPENCODE_BIN", "unset it")
    assert state_file.read_bytes() == before


def test_ocm_opencode_bin_overrides_path(
    login: RunningManager, add_repo: Callable[..., AddedRepo], recorder: Recorder, tmp_path: Path
) -> None:
    add_repo("widget")
    other = tmp_path / "elsewhere" / "my-opencode"
    other.parent.mkdir()
    other.write_text(recorder.path.read_text())
    other.chmod(0o755)
    result = run_ocm("use", "widget", env={"OCM_OPENCODE_BIN": str(other)})
    assert result.returncode == 0, result.stderr
    assert recorder.read()["argv"][0] == str(other)


def workspace_w(directory: str) -> dict[str, object]:
    """The one repo a stand-in Manager lists: #7 ``w``, ready at ``directory``."""
    return {
        "repoId": 7,
        "name": "w",
        "branch": "main",
        "cloneStatus": "ready",
        "directory": directory,
        "originUrl": "",
    }


def test_warm_up_asks_for_the_sessions_of_the_directory_before_exec(recorder: Recorder) -> None:
    workspace = workspace_w("/srv/repos/w x")
    with standin.serve() as server:
        server.json_route("/api/internal/opencode-workspaces", {"workspaces": [workspace]})
        server.json_route("/api/opencode-proxy/session", [])
        env = {"OPENCODE_MANAGER_URL": server.url + "/", "OCM_TOKEN": "sekret-token"}
        result = run_ocm("use", "7", env=env)
    assert result.returncode == 0, result.stderr
    paths = [(r["method"], r["path"]) for r in server.requests]
    assert paths == [
        ("GET", "/api/internal/opencode-workspaces"),
        ("GET", "/api/opencode-proxy/session"),
    ]
    warm = server.requests[1]
    assert parse_qs(warm["query"]) == {"directory": ["/srv/repos/w x"]}
    assert warm["headers"]["Authorization"] == "Bearer sekret-token"
    assert warm["headers"]["User-Agent"] == f"ocm/{__version__}"
    assert recorder.read()["argv"][2] == f"{server.url}/api/opencode-proxy"


def test_a_failing_warm_up_does_not_stop_the_attach(recorder: Recorder) -> None:
    workspace = workspace_w("/srv/repos/w")
    with standin.serve() as server:
        server.json_route("/api/internal/opencode-workspaces", {"workspaces": [workspace]})
        server.routes["/api/opencode-proxy/session"] = standin.Canned(500, b"boom", "text/plain")
        result = run_ocm("use", "w", env={"OPENCODE_MANAGER_URL": server.url, "OCM_TOKEN": "t0ken"})
    assert result.returncode == 0, result.stderr
    assert recorder.read()["env"]["OPENCODE_SERVER_PASSWORD"] == "t0ken"
