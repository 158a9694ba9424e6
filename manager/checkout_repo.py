"""Which Manager repo a local checkout is: the quick start's question before ``repo add``.

A checkout's repo is one whose recorded origin is what ``repo add`` of this checkout would
record (its ``origin``, or its own path when it has none), compared as ``ocm`` compares
origins: the repo bare ``ocm`` in the checkout finds; or the one added from its folder
before it had an origin, which ``ocm push`` and ``pull`` take then, while the checkout holds
that repo's history (a folder whose ``.git`` was made anew holds another project). A repo
that only shares the folder's name is another checkout's (``/x/demo`` and ``/y/demo``), so
this one is registered under a free name rather than taken for it.

``python -m manager.checkout_repo <checkout> <name>`` prints ``use <name>`` or ``add <name>``
for the Manager of the default data dir, and says on stderr why when the name is not
``<name>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from manager.config import DataDirError, Settings, default_data_dir
from manager.registry import READY, Registry, Repo
from manager.repos import origin_of_source
from manager.roots import compute_root_commits
from ocm.origin import normalise_origin
from ocm.root_commits import holds_history_of


def choose(repos: list[Repo], repos_dir: Path, checkout: Path, name: str) -> tuple[str, str]:
    """``("use", name)`` of this checkout's repo, else ``("add", a free name)``: ``name``,
    else ``name-2``, ``name-3``… (no repo has it, in any case, and no folder is in the way)."""
    # What `repo add` records for it now, or did before it had an origin: its path.
    origin = normalise_origin(origin_of_source(str(checkout)))
    path = normalise_origin(str(checkout.resolve()))

    def is_its_repo(repo: Repo) -> bool:
        recorded = normalise_origin(repo.origin_url or "")
        if recorded == path:  # added from this folder: if the project there is still that one
            known = compute_root_commits(repo.directory)
            return holds_history_of(checkout, known.roots if known else [])
        return recorded == origin

    same = [repo for repo in repos if repo.status == READY and is_its_repo(repo)]
    if same:
        return "use", next((repo.name for repo in same if repo.name == name), same[0].name)
    taken = {repo.name.lower() for repo in repos}
    free, count = name, 1
    while free.lower() in taken or (repos_dir / free).exists():
        count += 1
        free = f"{name}-{count}"
    return "add", free


def main(argv: list[str]) -> int:
    checkout, name = Path(argv[0]), argv[1]
    settings = Settings(data_dir=default_data_dir())
    try:
        settings.ensure_dirs()  # as `ocm-manager repo add` would, which comes next
        repos = Registry(settings.database_path).list_repos()
    except DataDirError as exc:
        print(f"quickstart: {exc}", file=sys.stderr)
        return 1
    action, chosen = choose(repos, settings.repos_dir, checkout, name)
    if action == "use" and chosen != name:
        print(f"quickstart: {checkout} is the Manager's repo {chosen}; using it", file=sys.stderr)
    elif action == "add" and chosen != name:
        print(
            f"quickstart: the name {name} is taken on the Manager by another checkout's repo"
            f" (or a folder left there); registering {checkout} as {chosen}",
            file=sys.stderr,
        )
    print(f"{action} {chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
