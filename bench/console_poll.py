"""What the console's Repos page costs with many repos and two open tabs.

Registers N repos (small clones of one local repo, one in 15 with an OpenCode session) on a real
Manager running the real ``opencode serve``, signs in twice (two tabs), then:

- idle: the CPU spent with no tab open, before the first poll and after the last;
- latency: each tab asks the JSON twin ``--polls`` times back to back, both at once;
- load: both tabs poll every 2 s, as ``console.js`` does, for ``--seconds``; the CPU the
  Manager (with its git children) and OpenCode spent meanwhile.

    python bench/console_poll.py [--repos N] [--polls P] [--seconds S] [--opencode PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from requests.cookies import RequestsCookieJar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Manager is started the way the tests start it
from manager.registry import Registry  # noqa: E402
from manager.repos import reserve_repo, run_clone  # noqa: E402
from manager.web.signin import cookie_name  # noqa: E402
from tests.support.auth import bearer  # noqa: E402
from tests.support.env import isolated_environ  # noqa: E402
from tests.support.git import make_repo  # noqa: E402
from tests.support.processes import start_manager  # noqa: E402
from tests.support.proctree import children, cmdline  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """User + system time of ``pid`` (and of its reaped children: git runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12])
    if with_children:
        used += int(fields[13]) + int(fields[14])
    return used / TICK


def register(data_dir: Path, source: Path, count: int) -> None:
    registry = Registry(data_dir / "manager.db")
    for index in range(count):
        repo = reserve_repo(registry, data_dir / "repos", str(source), name=f"repo-{index:03}")
        run_clone(registry, repo, str(source))


def sign_in(url: str) -> RequestsCookieJar:
    answer = requests.post(
        url + "/signin",
        data={"token": TOKEN[0]},
        headers={"Origin": url},
        allow_redirects=False,
        timeout=30,
    )
    answer.raise_for_status()
    return answer.cookies


TOKEN: list[str] = []


def poll(url: str, jar: RequestsCookieJar) -> float:
    started = time.perf_counter()
    answer = requests.get(url + "/repos?format=json", cookies=jar, timeout=120)
    answer.raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=150)
    parser.add_argument("--polls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--opencode", default=os.environ.get("OCM_TEST_OPENCODE", "opencode"))
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ocm-bench-poll-"))
    os.environ.update(isolated_environ(root / "home"))
    try:
        source = make_repo(root / "source", files={"README.md": "# bench\n"})
        data_dir = root / "data"
        data_dir.mkdir()
        started = time.perf_counter()
        register(data_dir, source, options.repos)
        print(f"{options.repos} repos registered in {time.perf_counter() - started:.1f} s")
        manager = start_manager(
            data_dir, root / "manager.log", "--opencode-bin", options.opencode, env=dict(os.environ)
        )
        try:
            manager.wait_for_opencode()
            TOKEN.append(manager.token)
            # Every 15th repo has a session: each folder OpenCode makes one in keeps it busy.
            for index in range(0, options.repos, 15):
                requests.post(
                    f"{manager.url}/api/opencode-proxy/session",
                    params={"directory": str(data_dir / "repos" / f"repo-{index:03}")},
                    json={},
                    headers=bearer(manager.token),
                    timeout=60,
                ).raise_for_status()
            tabs = [sign_in(manager.url) for _ in range(2)]
            name = cookie_name(Registry(data_dir / "manager.db").instance_id())
            assert all(name in tab for tab in tabs)

            settle(manager.process.pid)
            idle(manager.process.pid, options.seconds, "idle before the first poll")
            latencies: list[list[float]] = [[], []]

            def tab(index: int) -> None:
                for _ in range(options.polls):
                    latencies[index].append(poll(manager.url, tabs[index]))

            threads = [threading.Thread(target=tab, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            every = latencies[0] + latencies[1]
            print(
                f"latency, {options.polls} polls x 2 tabs at once: first"
                f" {latencies[0][0]:.2f}/{latencies[1][0]:.2f} s, median"
                f" {statistics.median(every):.3f} s, max {max(every):.2f} s"
            )

            before = cpu_seconds(manager.process.pid, True), opencode_cpu(manager.process.pid)
            stop = threading.Event()

            def live_tab(jar: RequestsCookieJar) -> None:
                while not stop.is_set():
                    poll(manager.url, jar)
                    stop.wait(2.0)

            threads = [threading.Thread(target=live_tab, args=(jar,)) for jar in tabs]
            for thread in threads:
                thread.start()
            time.sleep(options.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            after = cpu_seconds(manager.process.pid, True), opencode_cpu(manager.process.pid)
            print(
                f"load, 2 tabs polling every 2 s for {options.seconds:.0f} s: CPU Manager+git"
                f" {after[0] - before[0]:.1f} s, OpenCode {after[1] - before[1]:.1f} s"
            )
            idle(manager.process.pid, options.seconds, "idle after the tabs closed")
        finally:
            manager.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def settle(manager_pid: int, limit: float = 180) -> None:
    """Wait for OpenCode to be done with the work the first question about a folder starts
    (some 15 s of CPU here, whatever was asked), which would otherwise count as the polls'."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        start = opencode_cpu(manager_pid)
        time.sleep(5)
        if opencode_cpu(manager_pid) - start < 0.5:
            return


def idle(manager_pid: int, seconds: float, what: str) -> None:
    """The CPU spent while no tab is open: OpenCode keeps busy with each folder it was
    asked about, polled or not."""
    start = cpu_seconds(manager_pid, True), opencode_cpu(manager_pid)
    time.sleep(seconds)
    end = cpu_seconds(manager_pid, True), opencode_cpu(manager_pid)
    print(
        f"{what}, {seconds:.0f} s: CPU Manager+git {end[0] - start[0]:.1f} s,"
        f" OpenCode {end[1] - start[1]:.1f} s"
    )


def opencode_cpu(manager_pid: int) -> float:
    """CPU of the Manager's OpenCode: its launcher and whatever that runs."""
    total = 0.0
    pending = [pid for pid in children(manager_pid) if "opencode" in " ".join(cmdline(pid))]
    while pending:
        pid = pending.pop()
        total += cpu_seconds(pid)
        pending += children(pid)
    return total


if __name__ == "__main__":
    main()
