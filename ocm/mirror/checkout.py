"""Writing the files a snapshot changes into staging, with git, for the journaled switch.

Only what differs from the receiver's own snapshot of its work tree is written (the checks
have compared the two trees: :mod:`ocm.mirror.checks`), and ``git checkout-index
--prefix`` writes just those entries from a throw-away index, so symlinks, exec bits and
the receiver's own checkout filters are git's business.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ocm.mirror import gitcmd
from ocm.mirror.checks import Entry, sizes
from ocm.mirror.errors import NoSpace
from ocm.mirror.progress import human

# Room left on the disk after writing, for git's own bookkeeping and everything else.
SPARE_BYTES = 64 * 1024**2
# From this many bytes to write, git writes them with one worker per core (its parallel
# checkout), since inflating them is then the work: the 54 MB of a 2,024-file tree took
# 1.5-1.9 s one by one and 1.0-1.1 s on two cores. Below it, starting the workers costs more
# than they save (150 small files: 9 -> 12 ms; break-even about 5 MB here).
PARALLEL_BYTES = 8 * 1024**2


def write(
    root: Path,
    entries: list[Entry],
    dest: Path,
    index_file: Path,
    known: dict[str, int] | None = None,
) -> None:
    """Write ``entries`` under ``dest`` (created) as git would check them out. ``known``:
    blob sizes already asked for."""
    dest.mkdir(parents=True, exist_ok=True)
    if not entries:
        return
    known = known or {}
    if any(entry.oid not in known for entry in entries):
        known = sizes(root, {}, (entry.oid for entry in entries))
    needed = sum(known.get(entry.oid, 0) for entry in entries)
    free = shutil.disk_usage(dest).free
    if needed + SPARE_BYTES > free:
        raise NoSpace(
            f"writing the incoming files needs {human(needed)}, plus {human(SPARE_BYTES)} "
            f"kept free for git, and the disk has {human(free)} free",
            "free some space and try again",
        )
    env = {"GIT_INDEX_FILE": str(index_file)}
    records = b"".join(
        f"{entry.mode} {entry.oid}\t".encode()
        + entry.path.encode("utf-8", "surrogateescape")
        + b"\0"
        for entry in entries
    )
    gitcmd.run(root, "update-index", "-z", "--index-info", input=records, env=env)
    workers = "0" if needed >= PARALLEL_BYTES else "1"  # 0: one per core (from 100 files)
    done = gitcmd.run(
        root, "-c", f"checkout.workers={workers}", "checkout-index", "-a", "-f",
        f"--prefix={dest}/", env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        message = gitcmd.last_line(done.stderr)
        if gitcmd.out_of_space(done.returncode, done.stderr):
            raise NoSpace.receiving(" while writing the incoming files")
        raise gitcmd.GitError(f"git checkout-index failed in {root}: {message}")
