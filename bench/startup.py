"""Start-up time of ``ocm`` next to the bare interpreter and a bare ``requests`` call.

Starts a real Manager on 127.0.0.1 with a temp data dir and one repo, in front of a stand-in
OpenCode (``--opencode-url``: bare ``ocm`` warms it up, as it would the real one), logs in a
temp config dir, puts a do-nothing ``opencode`` first on PATH (bare ``ocm`` is timed up to its
exec), then runs each command N times, interleaved with its baseline, and prints medians:

    python bench/startup.py [--runs N] [--plain-install]

Goals (issue 2): ``--help``/``--version``/``status`` within 2x of ``python -c pass``; bare
``ocm`` within 1.3x of ``python -c "import requests; requests.get(<workspaces url>)"``.
Both sides use the same interpreter, so its own start-up cost cancels out.

The last row puts the token in a keyring instead: a stand-in backend that keeps it in a file
and that keyring discovers as an installed plugin would be (an entry point), so ``ocm list``
with the backend ``ocm login`` recorded is timed next to the same command left to keyring's
discovery of its backends.

By default ``ocm`` is this environment's console script. A development (editable) install
runs a path finder at every interpreter start that already imports pathlib, re and
urllib.parse, which flatters ``ocm`` next to ``python -c pass``. ``--plain-install`` times a
regular install instead: a real ``python3 -m install`` into a temp venv, exactly what a
user gets (pip from the package index).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Manager is started the way the tests start it

from tests.support.processes import start_manager  # noqa: E402
from tests.support.upstream import PASSWORD, RecordingUpstream  # noqa: E402

PY = sys.executable


def ocm_argv() -> list[str]:
    script = Path(sys.prefix) / "bin" / "ocm"
    return [str(script)] if script.exists() else [PY, "-m", "ocm"]


def compile_packages(python: str, where: Path) -> None:
    """Write the .pyc files pip writes at install time (PYTHONDONTWRITEBYTECODE=1 would
    otherwise make every timed run compile ocm from source)."""
    subprocess.run(
        [python, "-m", "compileall", "-q", str(where / "ocm"), str(where / "install")], check=True
    )


def plain_install(tmp: Path) -> tuple[str, list[str]]:
    """A real ``python3 -m install`` into a fresh venv: exactly what a user runs."""
    venv, bin_dir = tmp / "plain-venv", tmp / "plain-bin"
    subprocess.run(
        [PY, "-m", "install", "--venv", str(venv), "--bin-dir", str(bin_dir)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    # ocm no longer needs requests, but the baseline of bare ``ocm`` is a requests call.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "requests"], check=True, capture_output=True
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    compile_packages(str(python), site)
    return str(python), [str(bin_dir / "ocm")]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


STAND_IN_KEYRING = """
import json, os
from pathlib import Path
from keyring.backend import KeyringBackend

class Keyring(KeyringBackend):
    priority = 1
    path = Path(os.environ["OCM_BENCH_KEYRING_FILE"])

    def get_password(self, service, username):
        items = json.loads(self.path.read_text()) if self.path.exists() else {}
        return items.get(service + "|" + username)

    def set_password(self, service, username, password):
        items = json.loads(self.path.read_text()) if self.path.exists() else {}
        items[service + "|" + username] = password
        self.path.write_text(json.dumps(items))

    def delete_password(self, service, username):
        raise NotImplementedError
"""


def keyring_envs(
    tmp: Path, env: dict[str, str], login: list[str], token: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Two environments whose token is in the stand-in keyring: one logged in as ``ocm
    login`` leaves it (the backend recorded in state.json), one with that record removed
    (keyring discovers its backends, the stand-in among them)."""
    plugin = tmp / "keyring-plugin"
    (plugin / "bench_keyring-1.0.dist-info").mkdir(parents=True)
    (plugin / "bench_keyring-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bench-keyring\nVersion: 1.0\n"
    )
    (plugin / "bench_keyring-1.0.dist-info" / "entry_points.txt").write_text(
        "[keyring.backends]\nbench = bench_keyring\n"
    )
    (plugin / "bench_keyring.py").write_text(STAND_IN_KEYRING)
    base = {k: v for k, v in env.items() if k != "PYTHON_KEYRING_BACKEND"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")]))
    base["OCM_BENCH_KEYRING_FILE"] = str(tmp / "keyring.json")
    recorded = dict(base, OCM_CONFIG_DIR=str(tmp / "config-recorded"))
    discovered = dict(base, OCM_CONFIG_DIR=str(tmp / "config-discovered"))
    subprocess.run(login, input=token.encode(), env=recorded, check=True, capture_output=True)
    state = json.loads((tmp / "config-recorded" / "state.json").read_text())
    if state.get("keyringBackend") != "bench_keyring.Keyring":
        raise SystemExit(f"ocm login did not use the stand-in keyring: {state}")
    (tmp / "config-discovered").mkdir(mode=0o700)
    state["keyringBackend"] = None
    (tmp / "config-discovered" / "state.json").write_text(json.dumps(state))
    return recorded, discovered


def median_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument(
        "--plain-install", action="store_true", help="time a regular (non-editable) install of ocm"
    )
    options = parser.parse_args()
    runs = options.runs

    tmp = Path(tempfile.mkdtemp(prefix="ocm-bench-"))
    home = tmp / "home"
    bin_dir = tmp / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "opencode").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "opencode").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCM_", "OPENCODE_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=str(ROOT),
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@example.invalid",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@example.invalid",
    )
    stand_in = contextlib.ExitStack()
    upstream = stand_in.enter_context(RecordingUpstream())
    manager_env = {**env, "OCM_OPENCODE_PASSWORD": PASSWORD}
    manager = start_manager(
        tmp / "manager-data", tmp / "manager.log", "--opencode-url", upstream.url, env=manager_env
    )
    url, token = manager.url, manager.token
    try:
        source = tmp / "source"
        checkout = tmp / "checkout"
        for repo in (source, checkout):
            repo.mkdir()
            git(repo, "init", "-q", "-b", "main")
            (repo / "README.md").write_text("bench\n")
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "init")
            git(repo, "remote", "add", "origin", "git@example.com:bench/app.git")
        subprocess.run(
            [
                PY,
                "-m",
                "manager",
                "repo",
                "add",
                str(source),
                "--name",
                "app",
                "--data-dir",
                str(tmp / "manager-data"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*ocm_argv(), "login", url],
            input=token.encode(),
            env=env,
            check=True,
            capture_output=True,
        )

        if options.plain_install:
            python, ocm = plain_install(tmp)
        else:
            python, ocm = PY, ocm_argv()
            compile_packages(PY, ROOT)
        if options.plain_install:
            env.pop("PYTHONPATH")
        get = f"import requests; requests.get({url + '/api/internal/opencode-workspaces'!r})"
        bare = [python, "-c", "pass"]
        recorded, discovered = keyring_envs(tmp, env, [*ocm, "login", url], token)
        rows = [
            ("ocm --help", [*ocm, "--help"], env, "python -c pass", bare, env, 2.0),
            ("ocm --version", [*ocm, "--version"], env, "python -c pass", bare, env, 2.0),
            ("ocm status", [*ocm, "status"], env, "python -c pass", bare, env, 2.0),
            ("ocm (to exec)", ocm, env, "requests.get(url)", [python, "-c", get], env, 1.3),
            ("ocm list", [*ocm, "list"], env, "requests.get(url)", [python, "-c", get], env, None),
            # The same command, token in a keyring: the recorded backend against discovery.
            ("ocm list, kr", [*ocm, "list"], recorded, "keyring discovery", [*ocm, "list"],
             discovered, None),
        ]  # fmt: skip
        print(
            f"{runs} runs each, medians, interleaved; python {sys.version.split()[0]}; "
            f"ocm = {' '.join(ocm)}"
        )
        header = f"{'command':<16}{'ours ms':>9}  {'baseline':<20}{'base ms':>8}{'ratio':>7}  goal"
        print(header)
        print("-" * len(header))
        for label, ours, ours_env, base_label, base, base_env, goal in rows:
            for _ in range(2):  # warm the page cache and .pyc files
                median_ms(ours, ours_env, checkout)
                median_ms(base, base_env, checkout)
            ours_t, base_t = [], []
            for _ in range(runs):
                ours_t.append(median_ms(ours, ours_env, checkout))
                base_t.append(median_ms(base, base_env, checkout))
            o, b = statistics.median(ours_t), statistics.median(base_t)
            verdict = "" if goal is None else f"<= {goal}x {'ok' if o / b <= goal else 'MISSED'}"
            print(f"{label:<16}{o:>9.1f}  {base_label:<20}{b:>8.1f}{o / b:>7.2f}  {verdict}")
    finally:
        manager.stop()
        stand_in.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
