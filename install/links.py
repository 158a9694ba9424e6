"""The link decision table of SPEC §7, the way pipx and uv decide it.

``plan_link``/``plan_unlink`` only look at the file system and say what they would do;
``apply`` does it. Keeping the two apart lets the table be read (and tested) row by row.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from install.environment import Environment
from install.errors import PROGRAM, InstallError
from install.paths import on_path, path_export_line, same_path, shell_rc_file


class Action(str, Enum):
    CREATE = "create"  # nothing there yet
    REPLACE = "replace"  # a dangling link, or a stale one of ours, or --force
    KEEP = "keep"  # already the right link: nothing to do
    LEAVE = "leave"  # something foreign: not ours to touch
    REDUNDANT = "redundant"  # the script itself lives in the bin dir (pip install --user)
    REMOVE = "remove"  # unlink: a link into this environment
    ABSENT = "absent"  # unlink: nothing there


@dataclass(frozen=True)
class Plan:
    name: str
    link: Path
    target: Path | None
    action: Action
    found: str | None = None  # what is there now, for the message ("a link to X", "a file")
    forced: bool = False  # LEAVE would have been the answer without --force

    @property
    def changes(self) -> bool:
        return self.action in (Action.CREATE, Action.REPLACE, Action.REMOVE)


def _destination(link: Path) -> str:
    """Where a symlink points, as an absolute path (relative links count from their folder)."""
    return os.path.normpath(os.path.join(link.parent, os.readlink(link)))


def plan_link(
    name: str, target: Path, bin_dir: Path, env: Environment, *, force: bool = False
) -> Plan:
    link = bin_dir / name
    if bin_dir.is_dir() and same_path(target.parent, bin_dir):
        return Plan(name, link, target, Action.REDUNDANT)
    if not os.path.lexists(link):
        return Plan(name, link, target, Action.CREATE)
    if link.is_symlink():
        destination = _destination(link)
        if not link.exists():
            return Plan(name, link, target, Action.REPLACE, f"a dangling link to {destination}")
        if os.path.samefile(link, target):
            return Plan(name, link, target, Action.KEEP)
        if env.owns(destination):
            return Plan(
                name,
                link,
                target,
                Action.REPLACE,
                f"a stale link into this environment ({destination})",
            )
        found = f"a link to {destination}"
    elif link.is_dir():
        # A directory may hold anything: never removed, not even with --force.
        return Plan(name, link, target, Action.LEAVE, "a directory")
    elif os.path.samefile(link, target):
        return Plan(name, link, target, Action.KEEP)  # a hard link to the script
    else:
        found = "a file that is not a link"
    if force:
        return Plan(name, link, target, Action.REPLACE, found, forced=True)
    return Plan(name, link, target, Action.LEAVE, found)


def plan_unlink(name: str, bin_dir: Path, env: Environment) -> Plan:
    link = bin_dir / name
    target = env.scripts.get(name)
    if not os.path.lexists(link):
        return Plan(name, link, target, Action.ABSENT)
    if link.is_symlink():
        destination = _destination(link)
        if env.owns(destination):
            return Plan(name, link, target, Action.REMOVE, f"a link to {destination}")
        gone = "" if link.exists() else ", which no longer exists"
        return Plan(name, link, target, Action.LEAVE, f"a link to {destination}{gone}")
    if target is not None and not link.is_dir() and os.path.samefile(link, target):
        return Plan(name, link, target, Action.REDUNDANT)
    return Plan(
        name,
        link,
        target,
        Action.LEAVE,
        "a directory" if link.is_dir() else "a file that is not a link",
    )


def apply(plan: Plan) -> None:
    """Carry out a plan. The new link is made beside the old one and renamed over it, so
    there is never a moment without a working ``ocm``."""
    if plan.action is Action.REMOVE:
        plan.link.unlink()
        return
    if plan.action not in (Action.CREATE, Action.REPLACE) or plan.target is None:
        return
    plan.link.parent.mkdir(parents=True, exist_ok=True)
    temporary = plan.link.with_name(f".{plan.link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):  # left over by an interrupted run
        temporary.unlink()
    temporary.symlink_to(plan.target)
    try:
        os.replace(temporary, plan.link)
    except BaseException:
        temporary.unlink()
        raise


def link_message(plan: Plan) -> str:
    """The one line that tells the user what ``link`` did with one name."""
    name, link = plan.name, plan.link
    if plan.action is Action.CREATE:
        return f"{PROGRAM}: installed `{name}` at {link}"
    if plan.action is Action.REPLACE:
        return f"{PROGRAM}: installed `{name}` at {link} (replaced {plan.found})"
    if plan.action is Action.KEEP:
        return f"{PROGRAM}: `{name}` already installed at {link}; nothing to do"
    if plan.action is Action.REDUNDANT:
        return (
            f"{PROGRAM}: `{name}` already lives in {link.parent} (pip put it there); no link needed"
        )
    if plan.found == "a directory":
        return f"{PROGRAM}: left {link} alone: it is a directory; move it away and rerun"
    return (
        f"{PROGRAM}: left {link} alone: it is {plan.found}, not ours; "
        "remove it or rerun with --force to replace it"
    )


def unlink_message(plan: Plan) -> str:
    """The one line that tells the user what ``unlink`` did with one name."""
    link = plan.link
    if plan.action is Action.REMOVE:
        return f"{PROGRAM}: removed {link} ({plan.found})"
    if plan.action is Action.ABSENT:
        return f"{PROGRAM}: no {link}; nothing to remove"
    if plan.action is Action.REDUNDANT:
        return (
            f"{PROGRAM}: {link} was put there by pip, not linked; "
            "`pip uninstall ocm-cli` removes it"
        )
    return (
        f"{PROGRAM}: left {link} alone: it is {plan.found}, not this environment's; "
        "remove it yourself if you no longer need it"
    )


def link_all(env: Environment, bin_dir: Path, *, force: bool = False) -> list[Plan]:
    """Link every script of ``env`` into ``bin_dir``; returns what was decided for each."""
    plans = [
        plan_link(name, target, bin_dir, env, force=force) for name, target in env.scripts.items()
    ]
    for plan in plans:
        _apply_or_explain(plan, bin_dir)
    return plans


def unlink_all(env: Environment, bin_dir: Path, names: tuple[str, ...]) -> list[Plan]:
    """Remove the links in ``bin_dir`` that point into ``env``; leave every other file."""
    plans = [plan_unlink(name, bin_dir, env) for name in names]
    for plan in plans:
        _apply_or_explain(plan, bin_dir)
    return plans


def _apply_or_explain(plan: Plan, bin_dir: Path) -> None:
    try:
        apply(plan)
    except OSError as err:
        raise InstallError(
            f"could not change {plan.link}: {err.strerror or err}",
            f"check the permissions of {bin_dir}, or choose another directory with --bin-dir",
        ) from err


def path_hints(bin_dir: Path, plans: list[Plan], path_env: str | None = None) -> list[str]:
    """What to tell the user so the linked names actually run: the PATH line to add when
    ``bin_dir`` is missing from PATH, or a note when another program of the same name
    comes first."""
    usable = [
        p
        for p in plans
        if p.action in (Action.CREATE, Action.REPLACE, Action.KEEP, Action.REDUNDANT)
    ]
    if not usable:
        return []
    if not on_path(bin_dir, path_env):
        return [
            f"{PROGRAM}: {bin_dir} is not on your PATH; add this line to {shell_rc_file()} "
            "and open a new shell:",
            path_export_line(bin_dir),
        ]
    search = os.environ.get("PATH", "") if path_env is None else path_env
    notes = []
    for plan in usable:
        first = shutil.which(plan.name, path=search)
        if first and plan.target is not None and not same_path(first, plan.target):
            notes.append(
                f"{PROGRAM}: `{plan.name}` on your PATH runs {first}, found before "
                f"{bin_dir}; remove it or move {bin_dir} earlier in PATH"
            )
    return notes
