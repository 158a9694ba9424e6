"""Push and pull wall time against a raw ``tar -c | tar -x`` of the same files.

    .venv/bin/python bench/mirror.py [--cache DIR] [--rounds N]

Generates (once, cached in ``--cache``) a repo of >= 20k files and >= 150 MB including a
``.git`` with real history, plus an untracked ``node_modules`` that must not travel. Then,
side by side on this machine: the raw tar pipe of exactly the files that travel (with and
without gzip), and ``ocm push`` / ``ocm pull`` through a real Manager on 127.0.0.1 (with and
without ``OCM_MIRROR_GZIP=1``). Each run is paired with a raw run just before it and follows
a ``sync`` (earlier writeback is not billed to it); the table shows medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the Manager is started the way the tests start it

from tests.support.processes import start_manager  # noqa: E402

PY = sys.executable
FILES = 21_000
WORDS = [
    "def",
    "return",
    "import",
    "class",
    "self",
    "value",
    "index",
    "result",
    "error",
    "config",
    "manager",
    "repo",
    "mirror",
    "stream",
    "archive",
    "branch",
    "commit",
    "token",
    "client",
    "server",
    "request",
    "response",
    "data",
    "path",
    "file",
]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _text(rng: random.Random, lines: int) -> str:
    return "".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + "\n" for _ in range(lines))


def generate(repo: Path) -> None:
    """A deterministic repo: source-like text, some binaries, ten commits of history."""
    rng = random.Random(4)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "gc.auto", "0")  # no background gc racing the measurements
    git(repo, "remote", "add", "origin", "https://example.invalid/bench/big.git")
    names = [f"pkg{n % 40:02d}/mod{n % 7}/file{n:05d}.py" for n in range(FILES)]
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(_text(rng, rng.randint(20, 120)))
    for n in range(12):  # incompressible blobs: images, fonts, fixtures
        (repo / f"assets/blob{n}.bin").parent.mkdir(parents=True, exist_ok=True)
        (repo / f"assets/blob{n}.bin").write_bytes(rng.randbytes(3 << 20))
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    for round_ in range(10):  # history: each commit rewrites 5% of the files
        for name in rng.sample(names, FILES // 20):
            (repo / name).write_text(_text(rng, rng.randint(20, 120)))
        (repo / f"assets/blob{round_}.bin").write_bytes(rng.randbytes(3 << 20))
        git(repo, "commit", "-q", "-am", f"change {round_}")
        if round_ == 7:
            git(repo, "gc", "-q")  # mostly packed, the last commits loose: a lived-in repo
    for n in range(3000):  # untracked and not ignored: must stay home all the same
        path = repo / f"node_modules/dep{n % 300}/lib/f{n}.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(rng, 30))
    (repo / "build").mkdir()
    (repo / "build/out.bin").write_bytes(rng.randbytes(1 << 20))


def size_of(path: Path) -> tuple[int, int]:
    files = total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return files, total


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    # Flush what earlier steps wrote, so their writeback is not billed to this one.
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sh(cmd: str, **kw: object) -> None:
    subprocess.run(cmd, shell=True, check=True, **kw)  # type: ignore[call-overload]


class Manager:
    """A real Manager (``tests.support``'s, as the tests start it) plus ``ocm`` runs against it."""

    def __init__(self, data: Path) -> None:
        self.running = start_manager(data, data.parent / f"{data.name}.log", "--no-opencode")
        self.data, self.url, self.token = data, self.running.url, self.running.token

    def ocm(self, cwd: Path, *args: str, gzip: bool) -> None:
        env = {
            **os.environ,
            "OPENCODE_MANAGER_URL": self.url,
            "OCM_TOKEN": self.token,
            "OCM_MIRROR_GZIP": "1" if gzip else "0",
        }
        done = subprocess.run(
            [PY, "-m", "ocm", *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"ocm {' '.join(args)} failed: {done.stderr}")

    def stop(self) -> None:
        self.running.stop()


class Baseline:
    """The raw pipe of exactly the files that travel, plain or through ``gzip -1``."""

    def __init__(self, work: Path, source: Path, names: list[str]) -> None:
        self.dest = work / "dest"
        listing = work / "files.txt"
        listing.write_bytes(b"".join(os.fsencode(n) + b"\0" for n in names))
        self.tar_c = f"tar -C {source} --null -T {listing} -cf -"

    def run(self, *, gz: bool) -> float:
        shutil.rmtree(self.dest, ignore_errors=True)
        self.dest.mkdir()
        middle = " | gzip -1 | gzip -d" if gz else ""
        return timed(lambda: sh(f"{self.tar_c}{middle} | tar -C {self.dest} -xf -"))


Pairs = dict[str, list[tuple[float, float]]]


def measure_ocm(work: Path, source: Path, baseline: Baseline, *, gz: bool, rounds: int) -> Pairs:
    """push into a new Manager repo, push one changed file, pull one changed file.

    Each timing is paired with a raw-tar timing taken right before it, so a noisy machine
    skews both sides of a ratio alike.
    """
    tag = " +gzip" if gz else ""
    name = "laptop-gz" if gz else "laptop"
    manager = Manager(Path(tempfile.mkdtemp(prefix="manager-", dir=work)))
    laptop, other = work / name, work / f"other-{name}"
    repo_dir = manager.data / "repos" / name
    pairs: Pairs = {
        f"push, new repo{tag}": [],
        f"push, 1 file changed{tag}": [],
        f"pull, 1 file changed{tag}": [],
    }

    def new_repo() -> None:
        if repo_dir.exists():
            subprocess.run(
                [
                    PY,
                    "-m",
                    "manager",
                    "repo",
                    "remove",
                    name,
                    "--delete-files",
                    "--data-dir",
                    str(manager.data),
                ],
                check=True,
                capture_output=True,
            )
            (laptop / ".git" / "ocm-mirror.json").unlink(missing_ok=True)

    def edit_laptop() -> None:
        (laptop / "pkg00/mod0/file00000.py").write_text(f"edit {time.time()}\n")

    def edit_manager() -> None:
        (repo_dir / "pkg01/mod1/agent.py").write_text(f"agent {time.time()}\n")

    steps = [
        (f"push, new repo{tag}", new_repo, (laptop, "push", "--create", "--yes")),
        (f"push, 1 file changed{tag}", edit_laptop, (laptop, "push")),
        (f"pull, 1 file changed{tag}", edit_manager, (other, "pull", "--force")),
    ]
    try:
        sh(f"cp -a {source} {laptop}")
        sh(f"cp -a {source} {other}")
        for _ in range(rounds):
            for label, setup, (cwd, *argv) in steps:
                tar_time = baseline.run(gz=gz)
                setup()
                pairs[label].append(
                    (timed(lambda c=cwd, a=argv: manager.ocm(c, *a, gzip=gz)), tar_time)
                )
    finally:
        manager.stop()
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "ocm-bench"
        / "mirror-repo",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    source = args.cache
    if not (source / ".git").is_dir():
        print(f"generating {source} (once) ...", file=sys.stderr)
        shutil.rmtree(source, ignore_errors=True)
        generate(source)
    from ocm.mirror.send import prepare

    names = prepare(source).names
    files, total = len(names), sum(os.lstat(source / n).st_size for n in names)
    git_files, git_bytes = size_of(source / ".git")
    nm_files, _ = size_of(source / "node_modules")
    commits = len(git(source, "rev-list", "--all").split())
    print(
        f"repo: {files} files / {total / 1e6:.0f} MB travel ({git_files} files / "
        f"{git_bytes / 1e6:.0f} MB of them in .git, {commits} commits); {nm_files} untracked "
        "node_modules files stay home"
    )

    work = Path(tempfile.mkdtemp(prefix="ocm-bench-", dir=source.parent))
    try:
        baseline = Baseline(work, source, names)
        pairs: Pairs = {}
        for gz in (False, True):
            pairs.update(measure_ocm(work, source, baseline, gz=gz, rounds=args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmedian of {args.rounds} rounds; each run paired with a raw pipe run just before it")
    print(f"{'operation':28} {'ocm s':>7} {'raw tar s':>10} {'ratio':>7}")
    for label, runs in pairs.items():
        ours = statistics.median(o for o, _ in runs)
        raw = statistics.median(t for _, t in runs)
        ratio = statistics.median(o / t for o, t in runs)
        base = "tar | gzip -1 | tar" if "gzip" in label else "tar | tar"
        print(f"{label:28} {ours:7.2f} {raw:10.2f} {ratio:6.2f}x  (vs {base})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
