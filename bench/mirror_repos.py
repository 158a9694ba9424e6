"""The repos ``bench/mirror.py`` mirrors, generated once (deterministically) and cached.

- ``generated``: many files, short history: 21,000 source-like files, twelve 3 MB binaries,
  eleven commits (mostly packed, the last ones loose).
- ``history``: what real repos look like: ~2,000 files in the work tree, thousands of commits
  written by ``git fast-import`` in several runs (so several packs), small edits stored as
  deltas, binary assets replaced now and then (incompressible, so the history weighs what a
  real one does), tags and a second branch; >= 150 MB with ``.git``.
- ``tiny``: the ``history`` recipe scaled down, for a smoke run of the benchmark itself.

Each also has an untracked, unignored ``node_modules`` and an ignored ``build/``: neither
travels, and the baselines leave them out as well.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ORIGIN = "https://example.invalid/bench/{name}.git"
DATE0 = 1_600_000_000  # commit dates are fixed: the same seed gives the same commit ids
BUILD_DIRS = ("node_modules", "dist", ".next", ".venv", "__pycache__", ".turbo")


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, input=input, timeout=900
    ).stdout.decode()


def _init(repo: Path, name: str) -> None:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "gc.auto", "0")  # no background gc racing the measurements
    git(repo, "remote", "add", "origin", ORIGIN.format(name=name))


def _stay_home(repo: Path, rng: random.Random, modules: int) -> None:
    """Files that never travel: an unignored ``node_modules`` and an ignored build output."""
    for n in range(modules):
        path = repo / f"node_modules/dep{n % 300}/lib/f{n}.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_lines(rng, 30))
    (repo / "build").mkdir(exist_ok=True)
    (repo / "build/out.bin").write_bytes(rng.randbytes(1 << 20))


# ------------------------------------------------------------------ generated (the old one)

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


def _text(rng: random.Random, lines: int) -> str:
    return "".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + "\n" for _ in range(lines))


def _generated(repo: Path, name: str) -> None:
    """Source-like text, some binaries, ten commits of history (as bench/mirror.py had it)."""
    files = 21_000
    rng = random.Random(4)
    _init(repo, name)
    names = [f"pkg{n % 40:02d}/mod{n % 7}/file{n:05d}.py" for n in range(files)]
    for path in names:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(_text(rng, rng.randint(20, 120)))
    for n in range(12):  # incompressible blobs: images, fonts, fixtures
        (repo / f"assets/blob{n}.bin").parent.mkdir(parents=True, exist_ok=True)
        (repo / f"assets/blob{n}.bin").write_bytes(rng.randbytes(3 << 20))
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    for round_ in range(10):  # each commit rewrites 5% of the files
        for path in rng.sample(names, files // 20):
            (repo / path).write_text(_text(rng, rng.randint(20, 120)))
        (repo / f"assets/blob{round_}.bin").write_bytes(rng.randbytes(3 << 20))
        git(repo, "commit", "-q", "-am", f"change {round_}")
        if round_ == 7:
            git(repo, "gc", "-q")  # mostly packed, the last commits loose: a lived-in repo
    _stay_home(repo, rng, 3000)


# ------------------------------------------------------------------ history (fast-import)


@dataclass(frozen=True)
class Recipe:
    commits: int
    first_files: int  # text files in the first commit
    last_files: int  # text files at the end (new ones are added along the way)
    assets: int  # binary files, each replaced now and then
    asset_every: int  # one asset replaced every this many commits
    asset_kb: tuple[int, int]
    batches: tuple[float, ...]  # share of the commits in each pack
    modules: int  # untracked node_modules files


HISTORY = Recipe(
    commits=4000,
    first_files=1200,
    last_files=1900,
    assets=100,
    asset_every=24,
    asset_kb=(200, 600),
    batches=(0.55, 0.25, 0.12, 0.06, 0.02),
    modules=3000,
)
TINY = Recipe(
    commits=40,
    first_files=30,
    last_files=50,
    assets=4,
    asset_every=10,
    asset_kb=(20, 60),
    batches=(0.7, 0.3),
    modules=20,
)
DIRS = ("src/core", "src/api", "src/ui/components", "src/ui/pages", "lib", "tests", "docs")
SUFFIXES = {"src": ".py", "lib": ".ts", "tests": ".py", "docs": ".md"}


def _lines(rng: random.Random, count: int) -> bytes:
    """Source-like lines that compress only ~25% (random identifiers and literals)."""
    out = []
    for _ in range(count):
        indent = b"    " * rng.randint(0, 3)
        out.append(indent + base64.b64encode(rng.randbytes(rng.randint(9, 45))) + b"\n")
    return b"".join(out)


class _History:
    """The work tree as it evolves, written as fast-import commits."""

    def __init__(self, recipe: Recipe, rng: random.Random) -> None:
        self.recipe, self.rng = recipe, rng
        self.files: dict[str, bytes] = {}
        self.next_id = 0
        self.assets = [f"assets/img{n:03d}.bin" for n in range(recipe.assets)]

    def new_path(self) -> str:
        folder = self.rng.choice(DIRS)
        self.next_id += 1
        return (
            f"{folder}/mod{self.next_id % 23}/f{self.next_id:05d}" + SUFFIXES[folder.split("/")[0]]
        )

    def text(self) -> bytes:
        return _lines(self.rng, int(self.rng.lognormvariate(4.4, 0.9)) + 5)  # ~110 lines

    def asset(self) -> bytes:
        low, high = self.recipe.asset_kb
        return self.rng.randbytes(self.rng.randint(low, high) << 10)

    def edit(self, path: str) -> bytes:
        """A small edit: a few lines replaced or inserted, as most commits make."""
        lines = self.files[path].splitlines(keepends=True)
        for _ in range(self.rng.randint(1, 4)):
            at = self.rng.randrange(len(lines) + 1)
            lines[at : at + self.rng.randint(0, 2)] = [_lines(self.rng, 1)]
        return b"".join(lines)

    def changes(self, number: int) -> dict[str, bytes | None]:
        """What commit ``number`` does: path -> new content (None: deleted)."""
        recipe, rng = self.recipe, self.rng
        changed: dict[str, bytes | None] = {}
        if number == 0:
            for _ in range(recipe.first_files):
                changed[self.new_path()] = self.text()
            for path in self.assets:
                changed[path] = self.asset()
            changed[".gitignore"] = b"*.log\nbuild/\n"
            return changed
        grow = (recipe.last_files - recipe.first_files) / recipe.commits
        texts = [p for p in self.files if p not in self.assets and p != ".gitignore"]
        for path in rng.sample(texts, min(len(texts), rng.randint(1, 5))):
            changed[path] = self.edit(path)
        if rng.random() < grow * 1.25:  # new files, a few removed: the tree grows
            changed[self.new_path()] = self.text()
        if rng.random() < grow * 0.25:
            changed[rng.choice(texts)] = None
        if number % 97 == 0:  # a refactor rewrites a handful of files
            for path in rng.sample(texts, min(len(texts), 12)):
                changed[path] = self.text()
        if number % recipe.asset_every == 0:
            changed[rng.choice(self.assets)] = self.asset()
        return changed

    def stream(self, first: int, stop: int) -> bytes:
        out = bytearray()
        for number in range(first, stop):
            changes = self.changes(number)
            message = f"change {number}: {len(changes)} files\n".encode()
            when = DATE0 + number * 3600
            who = f"Bench <bench@example.invalid> {when} +0000\n".encode()
            out += b"commit refs/heads/main\nauthor " + who + b"committer " + who
            out += b"data %d\n%s" % (len(message), message)
            for path, content in sorted(changes.items()):
                if content is None:
                    self.files.pop(path, None)
                    out += b"D " + path.encode() + b"\n"
                    continue
                self.files[path] = content
                out += b"M 100644 inline " + path.encode() + b"\n"
                out += b"data %d\n" % len(content) + content + b"\n"
            out += b"\n"
            if number and number % 1000 == 0:
                out += b"reset refs/tags/v%d\nfrom refs/heads/main\n\n" % (number // 1000)
        return bytes(out)


def _history(repo: Path, name: str, recipe: Recipe, seed: int) -> None:
    rng = random.Random(seed)
    _init(repo, name)
    story = _History(recipe, rng)
    git(repo, "fast-import", "--quiet", input=story.stream(0, recipe.commits))
    _repack_in_batches(repo, recipe)
    git(repo, "checkout", "-q", "-f", "main")
    _stay_home(repo, rng, recipe.modules)


def _repack_in_batches(repo: Path, recipe: Recipe) -> None:
    """One delta-compressed pack per stretch of history, as fetches over the years leave.

    fast-import stores each blob whole; ``pack-objects`` finds the deltas a real repo has.
    """
    commits = git(repo, "rev-list", "--reverse", "main").split()
    old = list((repo / ".git/objects/pack").glob("pack-*"))
    done = 0
    for index, share in enumerate(recipe.batches):
        last = len(recipe.batches) - 1
        stop = len(commits) if index == last else done + round(share * len(commits))
        revs = commits[stop - 1] + ("\n^" + commits[done - 1] if done else "") + "\n"
        git(
            repo,
            "pack-objects",
            "-q",
            "--revs",
            "--no-reuse-delta",
            "--window=10",
            "--depth=50",
            str(repo / ".git/objects/pack/pack"),
            input=revs.encode(),
        )
        if index == 0:
            git(repo, "branch", "feature", commits[stop - 1])  # a branch that stayed behind
        done = stop
    for path in old:
        path.unlink()


# ------------------------------------------------------------------ the cache

KINDS = {
    # name -> (cache folder, builder); bump the folder's suffix when a recipe changes
    "generated": ("mirror-repo", lambda repo: _generated(repo, "generated")),
    "history": ("mirror-history-v2", lambda repo: _history(repo, "history", HISTORY, 11)),
    "tiny": ("mirror-tiny-v2", lambda repo: _history(repo, "tiny", TINY, 5)),
}


def default_cache() -> Path:
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "ocm-bench"


def cached(kind: str, cache: Path, say: object = print) -> Path:
    """The repo of ``kind`` under ``cache``, generated first if it is not there yet.

    It is built in a temporary folder and renamed into place, so an interrupted
    generation is never mistaken for a finished one.
    """
    folder, build = KINDS[kind]
    repo = cache / folder
    if (repo / ".git").is_dir():
        return repo
    cache.mkdir(parents=True, exist_ok=True)
    say(f"generating the {kind} repo in {repo} (once) ...")  # type: ignore[operator]
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=cache))
    try:
        build(scratch / "repo")
        shutil.rmtree(repo, ignore_errors=True)
        (scratch / "repo").rename(repo)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return repo
