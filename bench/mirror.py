"""``ocm push`` / ``ocm pull`` next to ``rsync -a --delete`` and a raw ``tar -c | tar -x``.

    .venv/bin/python bench/mirror.py [--quick] [--repos generated,history]
        [--changes 1,100,1000] [--links local,shaped] [--full-shaped history] [--rounds 3]
        [--shaped-max 30] [--cache DIR] [--work DIR] [--keep]

For each repo (generated once, cached: see ``bench/mirror_repos.py``) a fresh real Manager
(``--no-opencode``, as the tests start it) and, side by side in the same run, on each link:

- the first push into a new Manager repo (``ocm push --create --yes``) and a pull into a
  fresh clone (``git init`` + origin, ``ocm pull``);
- a push and a pull of 1, 100 and 1,000 changed files (one line replaced in each; the pull's
  changes are made in the Manager's checkout, as an agent would), then one more one-file
  push with all of those changes still uncommitted;
- each next to ``rsync -a --delete`` of the same change (between two copies of its own, via
  an rsync daemon) and a raw ``tar -c | tar -x`` of the same files (all files for the first
  push and the fresh pull, the changed ones otherwise);
- under the local table, for scale, git's own ``git clone --no-local`` of the same repo (a
  local pipe, no relay): what moving the history as git objects costs on this machine.

Every byte goes through a relay on 127.0.0.1 (``bench/shaped_link.py``): ``ocm`` reaches the
Manager through it, ``rsync`` its daemon, ``tar -c`` its ``tar -x``; the relay counts what
crosses it each way. Links: ``local`` (the relay only counts) and ``shaped`` (the relay paces
each direction to 20 Mbit/s and delays it by 20 ms: user space, because this kernel has no
``netem``). Whatever implementation is in this tree is measured: ``ocm`` and the Manager run
from this checkout (``PYTHONPATH``).

The links share one Manager and checkout: before the shaped series, the local series'
changes are committed and pushed (unmeasured), so both start clean. Bounded:
every transfer has a time limit; over the shaped link, rsync's full copies are not repeated
(they move what tar moves), the first push (into a second Manager repo, from a copy with
another origin) and fresh pull run only for the repos in ``--full-shaped``, and a change
whose local run moved more than ``--shaped-max`` seconds of bytes at 20 Mbit/s is run
unshaped and its time estimated from its bytes (marked ``est.``).
Ctrl-C cleans up (Managers, rsync daemons, relays, temp dirs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]  # the Manager is started the way the tests start it

from mirror_baselines import (  # noqa: E402
    TIMEOUT,
    RsyncDaemon,
    TarPipe,
    clear,
    rsync_excludes,
    travelling_files,
)
from mirror_repos import cached, default_cache  # noqa: E402
from shaped_link import Relay, Shape  # noqa: E402
from startup import compile_packages  # noqa: E402

from tests.support.env import isolated_environ  # noqa: E402
from tests.support.processes import start_manager  # noqa: E402

PY = sys.executable
SHAPE = Shape(rate=20e6, delay=0.020)
LINKS = {
    "local": "loopback, through a relay on 127.0.0.1 that only counts bytes",
    "shaped": f"shaped to {SHAPE.describe()} by a relay on 127.0.0.1 that paces and delays "
    "(user space: this kernel has tbf but no netem)",
}
TOOLS = ("ocm", "rsync", "tar")
TEXT_SUFFIXES = (".py", ".ts", ".md")
KB = 1000
ONE_FILE_BYTES = 100 * KB  # the goal: one changed file costs at most this each way
BIG_REPO = 150_000_000
STARTED = time.monotonic()
WORK_SPACE = 6 << 30  # a repo's run holds about six copies of it at once
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


# ------------------------------------------------------------------ measuring


@dataclass
class Sample:
    seconds: float | None = None
    up: int = 0  # client to server (laptop to Manager)
    down: int = 0
    error: str | None = None
    estimated: bool = False  # seconds from bytes at the link's rate, not run over it
    same_as: str = ""  # a sample shared with another row (the full tar serves both)

    @property
    def wire(self) -> int:
        return self.up + self.down


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:160]


def measure(relay: Relay, shaped: bool, action: Callable[[], None]) -> Sample:
    """Run ``action`` with ``relay`` shaped or not: wall time and bytes each way."""
    relay.shape = SHAPE if shaped else None
    os.sync()  # earlier writeback is not billed to this step
    up0, down0 = relay.counted()
    start = time.perf_counter()
    try:
        action()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Sample(error=_one_line(exc))
    finally:
        relay.shape = None
    seconds = time.perf_counter() - start
    up1, down1 = relay.counted()
    return Sample(seconds, up1 - up0, down1 - down0)


# ------------------------------------------------------------------ the repos


@dataclass
class Repo:
    kind: str
    source: Path
    names: list[str]  # every file that travels, .git included
    texts: list[str]  # tracked text files: what the changes edit
    travel_bytes: int
    git_bytes: int
    summary: str


def describe(kind: str, source: Path) -> Repo:
    names = travelling_files(source)
    sizes = {n: os.lstat(source / n).st_size for n in names}
    git_names = [n for n in names if n.startswith(".git/")]
    git_bytes = sum(sizes[n] for n in git_names)
    work = len(names) - len(git_names)
    texts = [n for n in names if n.endswith(TEXT_SUFFIXES) and not n.startswith(".git/")]
    commits = _git(source, "rev-list", "--all", "--count")
    packs = len(list((source / ".git/objects/pack").glob("*.pack")))
    total = sum(sizes.values())
    summary = (
        f"{kind}: {work:,} work-tree files + .git ({git_bytes / 1e6:.0f} MB, {int(commits):,} "
        f"commits, {packs} pack{'s' if packs != 1 else ''}) = {total / 1e6:.0f} MB that travel; "
        "an untracked node_modules and an ignored build/ stay home"
    )
    return Repo(kind, source, names, sorted(texts), total, git_bytes, summary)


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env} if env else None,
    ).stdout.strip()


def edit(paths: list[str], roots: list[Path], tag: str) -> None:
    """Replace one line in the middle of each file, the same way under every root."""
    for index, path in enumerate(paths):
        lines = (roots[0] / path).read_bytes().splitlines(keepends=True)
        middle = len(lines) // 2
        lines[middle : middle + 1] = [f"# {tag} {index} {time.time_ns()}\n".encode()]
        content = b"".join(lines)
        for root in roots:
            (root / path).write_bytes(content)


# ------------------------------------------------------------------ ocm and its Manager


class OcmSide:
    """A real Manager and the ``ocm`` CLI reaching it through a counting relay."""

    def __init__(self, work: Path) -> None:
        common = {"PYTHONPATH": str(ROOT), **IDENTITY}
        manager_env = {**isolated_environ(work / "manager-home"), **common}
        self.manager = start_manager(
            work / "manager", work / "manager.log", "--no-opencode", env=manager_env
        )
        url = urlsplit(self.manager.url)
        self.relay = Relay((url.hostname or "127.0.0.1", url.port or 80))
        self.env = {
            **isolated_environ(work / "home"),
            **common,
            "OPENCODE_MANAGER_URL": self.relay.url,
            "OCM_TOKEN": self.manager.token,
        }

    def run(self, cwd: Path, *args: str) -> None:
        done = subprocess.run(
            [PY, "-m", "ocm", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise RuntimeError(f"ocm {args[0]}: {said[-1] if said else done.returncode}")

    def checkout(self, name: str) -> Path:
        return self.manager.data_dir / "repos" / name

    def close(self) -> None:
        self.relay.close()
        self.manager.stop()


# ------------------------------------------------------------------ one repo over one link

Row = dict[str, Sample]
FIRST_PUSH = "first push (--create)"
FRESH_PULL = "pull into a fresh clone"


@dataclass
class Table:
    repo: Repo
    link: str
    rows: dict[str, Row] = field(default_factory=dict)
    # git's own clone of the same repo: what any transfer of git objects costs here
    git_clone: Sample | None = None


@dataclass
class Options:
    links: list[str]
    changes: list[int]
    full_shaped: set[str]
    shaped_max: float
    rounds: int
    work: Path
    keep: bool


class RepoRun:
    """Everything one repo is measured with: a Manager, rsync's two copies, the tar pipe.

    The links share them: the local rows run first, then the shaped ones continue from the
    same state (a change is a change, whichever link carries it). Only the first push and
    fresh pull over the shaped link need a Manager repo of their own: a second checkout
    with another origin creates it.
    """

    def __init__(self, repo: Repo, opts: Options, stack: contextlib.ExitStack) -> None:
        self.repo, self.opts = repo, opts
        self.tables = {link: Table(repo, link) for link in opts.links}
        self.work = Path(tempfile.mkdtemp(prefix=f"ocm-bench-{repo.kind}-", dir=opts.work))
        if not opts.keep:
            stack.callback(shutil.rmtree, self.work, ignore_errors=True)
        self.laptop = self.checkout(self.work / repo.kind)  # its folder names the Manager repo
        self.ocm = OcmSide(self.work)
        stack.callback(self.ocm.close)
        self.remote, self.rsync_laptop = self.work / "rsync-remote", self.work / "rsync-laptop"
        self.rsync = RsyncDaemon(self.work, self.remote)
        stack.callback(self.rsync.close)
        self.tar = TarPipe(self.work)
        stack.callback(self.tar.close)
        self.excludes = self.work / "rsync-excludes"
        self.excludes.write_text("".join(p + "\n" for p in rsync_excludes(self.laptop)))
        self.tar_dest = self.work / "tar-dest"

    def checkout(self, where: Path) -> Path:
        where.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(self.repo.source), str(where)], check=True, timeout=TIMEOUT)
        _git(where, "update-index", "-q", "--refresh")  # a copy's stat cache is stale
        return where

    def step(self, relay: Relay, shaped: bool | None, action: Callable[[], None]) -> Sample:
        """Measure ``action`` (``shaped=None``: a set-up step, whose failure ends the run)."""
        sample = measure(relay, bool(shaped), action)
        if sample.error and shaped is None:
            raise RuntimeError(f"setting up {self.repo.kind}: {sample.error}")
        return sample

    def record(self, link: str, label: str, row: Row) -> None:
        self.tables[link].rows[label] = row
        minutes = (time.monotonic() - STARTED) / 60
        print(
            f"  [{minutes:4.1f} min] {self.repo.kind} over {link}: {label}: {_brief(row)}",
            file=sys.stderr,
        )

    def full_copies(self) -> None:
        """The first push and the fresh pull; unmeasured set-up when ``local`` is not asked."""
        repo, local = self.repo, "local" in self.opts.links
        measured = False if local else None
        row: Row = {}
        if local:  # tar and rsync read the untouched checkout first, then ocm
            row["tar"] = self.step(self.tar.relay, False, self._tar_all(self.laptop))
        row["rsync"] = self.step(
            self.rsync.relay, measured, lambda: self.rsync.push(self.laptop, self.excludes)
        )
        row["ocm"] = self.step(
            self.ocm.relay, measured, lambda: self.ocm.run(self.laptop, "push", "--create", "--yes")
        )
        if local:
            self.record("local", FIRST_PUSH, row)
        row = {"tar": _same_run(row["tar"])} if local else {}
        row["rsync"] = self.step(
            self.rsync.relay, measured, lambda: self.rsync.pull(self.rsync_laptop, self.excludes)
        )
        if local:
            fresh = self.fresh_clone(self.work / "fresh" / repo.kind, self.laptop)
            row["ocm"] = self.step(self.ocm.relay, False, lambda: self.ocm.run(fresh, "pull"))
            self.record("local", FRESH_PULL, row)
            shutil.rmtree(fresh.parent)
            self.tables["local"].git_clone = self.step(self.tar.relay, False, self._git_clone)

    def _git_clone(self) -> None:
        """``git clone`` of the checkout by git's own transport (a local pipe: pack-objects
        into index-pack, then the checkout), with git's defaults (no fsck of the objects)."""
        target = self.work / "git-clone" / self.repo.kind
        _git(self.work, "clone", "-q", "--no-local", f"file://{self.laptop}", str(target))
        shutil.rmtree(target.parent)

    def full_copies_shaped(self) -> None:
        """The same over the shaped link, into a second Manager repo (rsync is not repeated)."""
        other = self.checkout(self.work / "shaped" / f"{self.repo.kind}-shaped")
        origin = _git(other, "remote", "get-url", "origin").replace(".git", "-shaped.git")
        _git(other, "remote", "set-url", "origin", origin)
        row: Row = {"tar": self.step(self.tar.relay, True, self._tar_all(other))}
        row["ocm"] = self.step(
            self.ocm.relay, True, lambda: self.ocm.run(other, "push", "--create", "--yes")
        )
        self.record("shaped", FIRST_PUSH, row)
        fresh = self.fresh_clone(self.work / "fresh" / self.repo.kind, other)
        row = {
            "tar": _same_run(row["tar"]),
            "ocm": self.step(self.ocm.relay, True, lambda: self.ocm.run(fresh, "pull")),
        }
        self.record("shaped", FRESH_PULL, row)
        shutil.rmtree(fresh.parent)
        shutil.rmtree(other.parent)

    def _tar_all(self, source: Path) -> Callable[[], None]:
        def copy() -> None:
            self.tar.copy(source, self.repo.names, self.tar_dest)
            clear(self.tar_dest)

        return copy

    @staticmethod
    def fresh_clone(where: Path, like: Path) -> Path:
        where.mkdir(parents=True)
        _git(where, "init", "-q", "-b", "main")
        _git(where, "remote", "add", "origin", _git(like, "remote", "get-url", "origin"))
        return where

    def changes(self, link: str) -> None:
        """A push and a pull of each number of changed files, every tool side by side.

        Each series starts from a clean checkout (what the one before changed is committed
        and pushed, unmeasured), and ends with one more one-file push, made with all of the
        series' changes still uncommitted.
        """
        if self.tables[link] is not next(iter(self.tables.values())):
            self.commit_everything()
        # Each number of changed files, then one file changed and committed (by you before a
        # push, by an agent before a pull): the commit moves the branch and the index too.
        cases = [(count, False) for count in self.opts.changes] + [(1, True)]
        for count, committed in cases:
            for direction in ("push", "pull"):
                label = f"{direction}, {count:,} file{'s' if count > 1 else ''} changed"
                label += " and committed" if committed else ""
                rounds = self.opts.rounds if count == 1 else 1
                runs = [
                    self.change(link, label, direction, count, n, committed=committed)
                    for n in range(rounds)
                ]
                self.record(
                    link, label, {tool: _median([run[tool] for run in runs]) for tool in TOOLS}
                )
        pending = len(_git(self.laptop, "status", "--porcelain", "-uno").splitlines())
        label = f"push, 1 file changed, {pending:,} uncommitted before it"
        self.record(link, label, self.change(link, label, "push", 1, 0))

    def commit_everything(self) -> None:
        """Commit what the laptop has and push it: the next series starts clean."""
        message = "bench: the changes so far"
        _git(self.laptop, "commit", "-q", "-a", "--allow-empty", "-m", message, env=IDENTITY)
        self.step(self.ocm.relay, None, lambda: self.ocm.run(self.laptop, "push"))

    def change(
        self,
        link: str,
        label: str,
        direction: str,
        count: int,
        round_: int,
        *,
        committed: bool = False,
    ) -> Row:
        """Change ``count`` files on one side (and commit them there: ``committed``), then
        carry it over with each tool."""
        shaped, local = link == "shaped", self.tables.get("local")
        repo, ocm, rsync, tar = self.repo, self.ocm, self.rsync, self.tar
        rng = random.Random(f"{repo.kind}-{label}-{round_}")
        paths = rng.sample(repo.texts, min(count, len(repo.texts)))
        tag = f"{link} {label} {round_}"
        if direction == "push":
            source, roots = self.laptop, [self.laptop, self.rsync_laptop]
            actions = {
                "ocm": (ocm.relay, lambda: ocm.run(self.laptop, "push")),
                "rsync": (rsync.relay, lambda: rsync.push(self.rsync_laptop, self.excludes)),
            }
        else:  # an agent changed them on the Manager
            source = ocm.checkout(repo.kind)
            roots = [source, self.remote]
            actions = {
                "ocm": (ocm.relay, lambda: ocm.run(self.laptop, "pull")),
                "rsync": (rsync.relay, lambda: rsync.pull(self.rsync_laptop, self.excludes)),
            }
        edit(paths, roots, tag)
        for root in roots if committed else ():  # rsync's copy too: its .git carries it
            _git(root, "commit", "-q", "-m", f"bench: {tag}", "--", *paths, env=IDENTITY)
        actions["tar"] = (tar.relay, lambda: tar.copy(source, paths, self.tar_dest))
        row: Row = {}
        for tool, (relay, action) in actions.items():
            before = local.rows.get(label, {}).get(tool) if shaped and local else None
            if before and before.wire * 8 / SHAPE.rate > self.opts.shaped_max:
                # Too long to wait for over the shaped link: keep the state moving
                # unshaped, and estimate the time from the local run's bytes.
                self.step(relay, None, action)
                seconds = before.wire * 8 / SHAPE.rate
                row[tool] = Sample(seconds, before.up, before.down, estimated=True)
            else:
                row[tool] = self.step(relay, shaped, action)
        return row


def run_repo(repo: Repo, opts: Options) -> list[Table]:
    with contextlib.ExitStack() as stack:
        run = RepoRun(repo, opts, stack)
        run.full_copies()
        if "shaped" in opts.links and repo.kind in opts.full_shaped:
            run.full_copies_shaped()
        for link in opts.links:
            run.changes(link)
        return list(run.tables.values())


def _same_run(sample: Sample) -> Sample:
    return dataclasses.replace(sample, same_as="↑")


def _median(samples: list[Sample]) -> Sample:
    """The run with the median time (any failure wins: it must be seen)."""
    failed = [sample for sample in samples if sample.error]
    if failed:
        return failed[0]
    ranked = sorted(samples, key=lambda sample: sample.seconds or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def _brief(row: Row) -> str:
    return ", ".join(
        f"{tool} {_seconds(row[tool])} ({_wire(row[tool])})" for tool in TOOLS if tool in row
    )


# ------------------------------------------------------------------ the table


def _size(count: int) -> str:
    if count < 10 * KB:
        return f"{count:,} B"
    if count < 10_000 * KB:
        return f"{count / KB:,.0f} KB"
    return f"{count / 1e6:,.1f} MB"


def _seconds(sample: Sample | None) -> str:
    if sample is None:
        return "–"
    if sample.error:
        return f"failed: {sample.error}"
    assert sample.seconds is not None
    text = f"{sample.seconds:.2f} s" if sample.seconds < 10 else f"{sample.seconds:.1f} s"
    return f"≥ {text} est." if sample.estimated else text


def _wire(sample: Sample | None, *, both: bool = True) -> str:
    if sample is None or sample.error:
        return "–"
    if not both:
        return _size(sample.wire)
    return f"{_size(sample.up)} / {_size(sample.down)}"


def _ratio(ours: Sample | None, theirs: Sample | None) -> float | None:
    if not ours or not theirs or ours.error or theirs.error:
        return None
    if not ours.seconds or not theirs.seconds:
        return None
    return ours.seconds / theirs.seconds


def _times(value: float | None, ours: Sample | None = None) -> str:
    if value is None:
        return "–"
    return f"≥ {value:.2f}×" if ours and ours.estimated else f"{value:.2f}×"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def goals(table: Table, label: str, row: Row) -> str:
    """The issue's goals that apply to this row, met or not."""
    ocm, rsync, tar = (row.get(tool) for tool in TOOLS)
    if ocm is None or ocm.error:
        return "–"
    shaped = table.link == "shaped"
    said = []
    if label in (FIRST_PUSH, FRESH_PULL):
        limit = 1.1 if shaped else 2.0
        vs_tar = _ratio(ocm, tar)
        if vs_tar is not None:
            said.append(f"≤ {limit:g}× tar {_mark(vs_tar <= limit)}")
        return ", ".join(said) or "–"
    count = int(label.split(", ")[1].split()[0].replace(",", ""))
    if count == 1:
        small = ocm.up <= ONE_FILE_BYTES and ocm.down <= ONE_FILE_BYTES
        said.append(f"≤ 100 KB each way {_mark(small)}")
        vs_rsync = _ratio(ocm, rsync)
        if vs_rsync is not None:
            said.append(f"≤ rsync {_mark(vs_rsync <= 1)}")
        big = table.repo.travel_bytes >= BIG_REPO
        if shaped and big and label.startswith("push") and ocm.seconds is not None:
            said.append(f"< 2 s {_mark(ocm.seconds < 2 and not ocm.estimated)}")
    elif tar is not None and not tar.error:
        # Grows with the change: no more than the changed files themselves (tar) carry.
        bound = 1.5 * tar.wire + ONE_FILE_BYTES
        said.append(f"≤ 1.5× tar bytes + 100 KB {_mark(ocm.wire <= bound)}")
    return ", ".join(said) or "–"


def render(table: Table) -> str:
    lines = [
        f"#### {table.repo.kind}, {table.link}: {LINKS[table.link]}",
        "",
        "| operation | ocm | ocm ↑ / ↓ | rsync -a --delete | rsync ↑ / ↓ | tar \\| tar "
        "| tar bytes | ocm ÷ rsync | ocm ÷ tar | goals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in table.rows.items():
        ocm, rsync, tar = (row.get(tool) for tool in TOOLS)
        tar_time = _seconds(tar) + (" (same run)" if tar and tar.same_as else "")
        cells = [
            label,
            _seconds(ocm),
            _wire(ocm),
            _seconds(rsync),
            _wire(rsync),
            tar_time,
            _wire(tar, both=False),
            _times(_ratio(ocm, rsync), ocm),
            _times(_ratio(ocm, tar), ocm),
            goals(table, label, row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    clone, tar = table.git_clone, table.rows.get(FIRST_PUSH, {}).get("tar")
    if clone and clone.seconds is not None and tar and tar.seconds:
        lines += [
            "",
            f"For scale: git's own `git clone --no-local` of the same repo took "
            f"{clone.seconds:.2f} s, {clone.seconds / tar.seconds:.2f}× tar's time.",
        ]
    return "\n".join(lines)


HOW_TO_READ = """\
How to read: one run each, but the one-file push and pull show the median of {rounds} runs.
↑ = laptop to Manager, ↓ = Manager to laptop; bytes are TCP payload through the relay (HTTP
headers included, TCP/IP headers not); KB/MB are 10^3/10^6 bytes. "ocm ÷ x" is a time
ratio: below 1 ocm was faster. rsync copies between two directories of its own via an rsync
daemon; tar moves exactly the files that travel (all of them for the first push, and the
same run serves the fresh pull), or only the changed ones. "est.": not run over the shaped
link (its local run moved too many bytes); the time is what those bytes need at the link's
rate, a lower bound. "–": not measured (rsync's full copies are not repeated over the shaped
link: they move what tar moves)."""


def header(repos: list[Repo], began: float, work: Path) -> str:
    """When, where and which implementation: a table means little without them."""
    dirty = _git(ROOT, "status", "--porcelain", "--", "ocm", "manager")
    lines = [
        "ocm push/pull vs rsync -a --delete and tar | tar: "
        f"{time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(began))}, {os.cpu_count()} cores, "
        f"{_git(ROOT, 'version')}, ocm at {_git(ROOT, 'rev-parse', '--short', 'HEAD')}"
        + (" + uncommitted changes" if dirty else "")
        + f"; work folders in {work.parent}"
    ]
    return "\n".join(lines + [f"- {repo.summary}" for repo in repos])


# ------------------------------------------------------------------ main


def work_place(cache: Path) -> Path:
    """A tmpfs if there is a large enough one: every side writes to the same kind of disk."""
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= WORK_SPACE:
            return shm
    return cache


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=_csv, default=["generated", "history"])
    parser.add_argument("--changes", default="1,100,1000")
    parser.add_argument("--links", type=_csv, default=["local", "shaped"])
    parser.add_argument(
        "--full-shaped",
        type=_csv,
        default=["history"],
        help="repos whose first push and fresh pull also run over the shaped link (~1 min "
        "each per 150 MB); 'none' for none",
    )
    parser.add_argument(
        "--shaped-max",
        type=float,
        default=30,
        help="seconds of bytes at 20 Mbit/s above which a change is estimated, not run shaped",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of the one-file push and pull (the table shows the median)",
    )
    parser.add_argument("--quick", action="store_true", help="changes 1,100; no full shaped runs")
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where the checkouts, Manager and copies live (default: /dev/shm when it has "
        f"{WORK_SPACE >> 30} GB free, so this VM's slow shared disk is not what is measured; "
        "else --cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    changes = [int(n) for n in _csv(args.changes)]
    if args.quick:
        changes, args.full_shaped, args.rounds = [n for n in changes if n <= 100] or [1], [], 1
    for name in ("rsync", "tar", "git"):
        if not shutil.which(name):
            parser.error(f"{name} is not installed")
    signal.signal(signal.SIGTERM, _interrupt)
    compile_packages(PY, ROOT)
    start, began = time.monotonic(), time.time()
    repos = [describe(kind, cached(kind, args.cache)) for kind in args.repos]
    place = args.work or work_place(args.cache)
    place.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ocm-bench-", dir=place))
    links = [link for link in LINKS if link in args.links]
    if not links or set(args.links) - set(LINKS):
        parser.error(f"--links takes {', '.join(LINKS)}")
    opts = Options(
        links,
        changes,
        set(args.full_shaped),
        args.shaped_max,
        args.rounds,
        work,
        args.keep,
    )
    tables = []
    try:
        for repo in repos:
            print(repo.summary, file=sys.stderr)
            tables += run_repo(repo, opts)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(header(repos, began, work))
    for table in tables:
        print()
        print(render(table))
    marks = [
        goal
        for table in tables
        for label, row in table.rows.items()
        for goal in goals(table, label, row).split(", ")
    ]
    met, judged = sum(g.endswith("✓") for g in marks), sum(g.endswith(("✓", "✗")) for g in marks)
    minutes = (time.monotonic() - start) / 60
    print(f"\ngoals met: {met} of {judged}; the run took {minutes:.1f} min\n")
    print(HOW_TO_READ.format(rounds=opts.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
