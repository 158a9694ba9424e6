"""One-file ``ocm push`` / ``ocm pull`` on a long history and a short one, next to rsync.

    .venv/bin/python bench/long_history.py [--commits 500000] [--rounds 5] [--cache DIR]

The cost of a transfer should follow the change, not the repo, and a history's length is
part of the repo: a checkout without ``origin`` is matched by its root commits, which git
finds by walking the whole history (``git rev-list --max-parents=0 HEAD``). Two repos with
the same 100 files: ``long``, a linear history of ``--commits`` commits (made once with
``git fast-import``, cached, without git's commit-graph, as a clone has it), and
``short``, one commit. Each is copied to a checkout without origin, pushed to a fresh
Manager (unmeasured), then, ``--rounds`` times each, measured:

- push, 1 file changed (uncommitted); push, 1 file changed and committed here;
- pull, 1 file an agent changed and committed on the Manager (HEAD moved there);

and, for the long one, ``rsync -a --delete`` of the same change between two copies of its
own (its daemon on 127.0.0.1). ``ocm`` reaches the Manager as in ``bench/mirror.py``'s local
link (its ``OcmSide``: a relay on 127.0.0.1 that only counts). The table shows medians.
Whatever is in this tree is measured: ``ocm`` and the Manager run from this checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from mirror import IDENTITY, OcmSide, work_place  # noqa: E402
from mirror_baselines import TIMEOUT, RsyncDaemon, rsync_excludes  # noqa: E402
from mirror_repos import default_cache  # noqa: E402

FILES = 100


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    env = {**os.environ, **IDENTITY}
    done = subprocess.run(
        ["git", *args], cwd=cwd, input=input, env=env, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def long_history(cache: Path, commits: int) -> Path:
    """A linear history of ``commits`` commits over FILES files (cached)."""
    repo = cache / f"long-history-{commits}"
    if (repo / ".git").is_dir():
        return repo
    print(f"generating {commits:,} commits in {repo} (once) ...", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".long-history-", dir=cache))
    try:
        git(scratch, "init", "-q", "-b", "main", "repo")
        stream = "".join(
            f"commit refs/heads/main\nmark :{n + 1}\n"
            f"committer Bench <bench@example.invalid> {1_600_000_000 + n} +0000\n"
            f"data 7\nchange\n{f'from :{n}' + chr(10) if n else ''}"
            f"M 100644 inline f{n % FILES:03}.txt\ndata {len(str(n)) + 1}\n{n}\n\n"
            for n in range(commits)
        )
        git(scratch / "repo", "fast-import", "--quiet", input=stream.encode())
        git(scratch / "repo", "checkout", "-q", "-f", "main")
        (scratch / "repo").rename(repo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return repo


def short_history(long: Path, cache: Path) -> Path:
    """The same files as ``long``'s, in one commit (cached)."""
    repo = cache / f"{long.name}-short"
    if (repo / ".git").is_dir():
        return repo
    scratch = Path(tempfile.mkdtemp(prefix=".short-history-", dir=cache))
    try:
        for path in long.glob("f*.txt"):
            shutil.copy2(path, scratch / path.name)
        git(scratch, "init", "-q", "-b", "main")
        git(scratch, "add", "-A")
        git(scratch, "commit", "-q", "-m", "one commit")
        scratch.rename(repo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return repo


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


PUSH, COMMITTED, PULL = (
    "push, 1 file changed",
    "push, 1 file changed and committed",
    "pull, 1 file an agent changed and committed",
)


def run(side: OcmSide, kind: str, source: Path, work: Path, rounds: int, rsync: bool) -> dict:
    """Median seconds of each operation for ``source``: ocm's, and rsync's (``rsync``)."""
    laptop, rsync_laptop = work / kind / "laptop", work / kind / "rsync-laptop"
    laptop.parent.mkdir(parents=True)
    for copy in (laptop, rsync_laptop) if rsync else (laptop,):
        subprocess.run(["cp", "-a", str(source), str(copy)], check=True, timeout=TIMEOUT)
        git(copy, "update-index", "-q", "--refresh")  # a copy's stat cache is stale
    side.run(laptop, "push", "--create", "--yes", "--name", kind)
    manager_copy = side.checkout(kind)
    daemon = RsyncDaemon(work / kind, work / kind / "rsync-remote") if rsync else None
    excludes = work / kind / "excludes"
    excludes.write_text("".join(p + "\n" for p in rsync_excludes(laptop)))
    ours: dict[str, list[float]] = {PUSH: [], COMMITTED: [], PULL: []}
    theirs: dict[str, list[float]] = {PUSH: [], COMMITTED: [], PULL: []}
    try:
        if daemon:
            daemon.push(rsync_laptop, excludes)
        for n in range(rounds):
            for label, name, commit in ((PUSH, "f000.txt", False), (COMMITTED, "f001.txt", True)):
                for copy in (laptop, rsync_laptop) if daemon else (laptop,):
                    (copy / name).write_text(f"edited here {n}\n")
                    if commit:
                        git(copy, "commit", "-qam", f"here {n}")
                ours[label].append(timed(lambda: side.run(laptop, "push")))
                if daemon:
                    theirs[label].append(timed(lambda: daemon.push(rsync_laptop, excludes)))
            for copy in (manager_copy, daemon.remote) if daemon else (manager_copy,):
                (copy / "f002.txt").write_text(f"an agent's {n}\n")
                git(copy, "commit", "-qam", f"agent {n}")
            ours[PULL].append(timed(lambda: side.run(laptop, "pull")))
            if daemon:
                theirs[PULL].append(timed(lambda: daemon.pull(rsync_laptop, excludes)))
    finally:
        if daemon:
            daemon.close()
    return {
        label: (statistics.median(ours[label]), theirs[label] and statistics.median(theirs[label]))
        for label in ours
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args()
    long = long_history(args.cache, args.commits)
    short = short_history(long, args.cache)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ocm-bench-long-", dir=work_place(args.cache)))
    side = None
    try:
        side = OcmSide(work)
        long_times = run(side, "long", long, work, args.rounds, rsync=True)
        short_times = run(side, "short", short, work, args.rounds, rsync=False)
    finally:
        if side:
            side.close()
        shutil.rmtree(work, ignore_errors=True)
    head = git(ROOT, "rev-parse", "--short", "HEAD")
    print(
        f"\n#### one file, a checkout without origin: {args.commits:,} commits against one "
        f"({FILES} files; median of {args.rounds}; ocm at {head}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"
    )
    columns = ["operation", "ocm, long", "ocm, short", "rsync -a --delete, long"]
    columns += ["long ÷ short", "ocm ÷ rsync, long"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    for label, (ocm_long, rsync_long) in long_times.items():
        ocm_short = short_times[label][0]
        print(
            f"| {label} | {ocm_long:.2f} s | {ocm_short:.2f} s | {rsync_long:.2f} s | "
            f"{ocm_long / ocm_short:.2f}× | {ocm_long / rsync_long:.2f}× |"
        )
    print(f"\nthe run took {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
