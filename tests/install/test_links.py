"""The link decision table (SPEC §7), row by row, on fake environments."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from install.environment import Environment
from install.links import (
    Action,
    link_all,
    link_message,
    path_hints,
    plan_link,
    unlink_all,
    unlink_message,
)


def _snapshot(path: Path) -> tuple[int, int, str | None]:
    info = os.lstat(path)
    return info.st_ino, info.st_mtime_ns, os.readlink(path) if path.is_symlink() else None


# -- link --------------------------------------------------------------------------------


def test_absent_creates_an_absolute_link_and_the_bin_dir(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    assert not local_bin.exists()
    [plan] = link_all(env, local_bin)
    link = local_bin / "ocm"
    assert plan.action is Action.CREATE
    assert os.readlink(link) == str(env.scripts["ocm"])
    assert os.path.isabs(os.readlink(link))
    assert link_message(plan) == f"ocm-cli: installed `ocm` at {link}"
    assert not [p for p in local_bin.iterdir() if p.name.endswith(".tmp")]


def test_same_link_is_left_as_it_is_and_rerunning_changes_nothing(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env(names=("ocm", "ocm-manager"))
    link_all(env, local_bin)
    before = {name: _snapshot(local_bin / name) for name in ("ocm", "ocm-manager")}
    plans = link_all(env, local_bin)
    assert [p.action for p in plans] == [Action.KEEP, Action.KEEP]
    assert not any(p.changes for p in plans)
    assert {name: _snapshot(local_bin / name) for name in before} == before
    assert link_message(plans[0]) == (
        f"ocm-cli: `ocm` already installed at {local_bin / 'ocm'}; nothing to do"
    )


def test_relative_link_to_the_same_script_counts_as_the_same(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").symlink_to(os.path.relpath(env.scripts["ocm"], local_bin))
    assert plan_link("ocm", env.scripts["ocm"], local_bin, env).action is Action.KEEP


def test_dangling_link_is_replaced(
    fake_env: Callable[..., Environment], local_bin: Path, tmp_path: Path
) -> None:
    env = fake_env()
    local_bin.mkdir(parents=True)
    gone = tmp_path / "removed-venv" / "bin" / "ocm"
    (local_bin / "ocm").symlink_to(gone)
    [plan] = link_all(env, local_bin)
    assert plan.action is Action.REPLACE
    assert os.readlink(local_bin / "ocm") == str(env.scripts["ocm"])
    assert link_message(plan) == (
        f"ocm-cli: installed `ocm` at {local_bin / 'ocm'} (replaced a dangling link to {gone})"
    )


def test_stale_link_into_this_environment_is_replaced(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    old = env.prefix / "bin" / "ocm-0.0.9"
    old.write_text("#!/bin/sh\n")
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").symlink_to(old)
    [plan] = link_all(env, local_bin)
    assert plan.action is Action.REPLACE and "stale link into this environment" in plan.found
    assert os.readlink(local_bin / "ocm") == str(env.scripts["ocm"])


def test_foreign_link_is_left_alone_unless_forced(
    fake_env: Callable[..., Environment], local_bin: Path, tmp_path: Path
) -> None:
    env = fake_env()
    other = tmp_path / "other-tool" / "ocm"  # e.g. an unrelated program also called ocm
    other.parent.mkdir()
    other.write_text("#!/bin/sh\necho other\n")
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").symlink_to(other)
    before = _snapshot(local_bin / "ocm")

    [plan] = link_all(env, local_bin)
    assert plan.action is Action.LEAVE
    assert _snapshot(local_bin / "ocm") == before
    assert link_message(plan) == (
        f"ocm-cli: left {local_bin / 'ocm'} alone: it is a link to {other}, not ours; "
        "remove it or rerun with --force to replace it"
    )

    [plan] = link_all(env, local_bin, force=True)
    assert plan.action is Action.REPLACE and plan.forced
    assert os.readlink(local_bin / "ocm") == str(env.scripts["ocm"])
    assert other.read_text() == "#!/bin/sh\necho other\n"  # only the link went


def test_link_to_another_live_ocm_environment_is_not_ours(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    old_env, env = fake_env("old-venv"), fake_env("new-venv")
    link_all(old_env, local_bin)
    [plan] = link_all(env, local_bin)
    assert plan.action is Action.LEAVE
    assert os.readlink(local_bin / "ocm") == str(old_env.scripts["ocm"])


def test_foreign_file_is_left_alone_unless_forced(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").write_text("#!/bin/sh\necho mine\n")
    [plan] = link_all(env, local_bin)
    assert plan.action is Action.LEAVE
    assert (local_bin / "ocm").read_text() == "#!/bin/sh\necho mine\n"
    assert "it is a file that is not a link, not ours" in link_message(plan)

    [plan] = link_all(env, local_bin, force=True)
    assert plan.action is Action.REPLACE
    assert os.readlink(local_bin / "ocm") == str(env.scripts["ocm"])


def test_a_directory_is_never_replaced_even_with_force(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    (local_bin / "ocm").mkdir(parents=True)
    (local_bin / "ocm" / "keep.txt").write_text("data")
    [plan] = link_all(env, local_bin, force=True)
    assert plan.action is Action.LEAVE
    assert (local_bin / "ocm" / "keep.txt").read_text() == "data"
    assert "it is a directory; move it away and rerun" in link_message(plan)


def test_script_already_in_the_bin_dir_is_redundant(fake_env: Callable[..., Environment]) -> None:
    # `pip install --user` on Linux puts the script itself into ~/.local/bin.
    env = fake_env("user-site", is_venv=False)
    bin_dir = env.prefix / "bin"
    before = _snapshot(bin_dir / "ocm")
    [plan] = link_all(env, bin_dir, force=True)
    assert plan.action is Action.REDUNDANT
    assert _snapshot(bin_dir / "ocm") == before
    assert link_message(plan) == (
        f"ocm-cli: `ocm` already lives in {bin_dir} (pip put it there); no link needed"
    )


def test_outside_a_venv_only_our_scripts_count_as_ours(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    # A system-wide install shares its prefix (/usr) with every other program.
    env = fake_env("usr", is_venv=False)
    neighbour = env.prefix / "bin" / "ocm-from-someone-else"
    neighbour.write_text("#!/bin/sh\n")
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").symlink_to(neighbour)
    [plan] = link_all(env, local_bin)
    assert plan.action is Action.LEAVE


def test_each_script_is_decided_on_its_own(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env(names=("ocm", "ocm-manager"))
    local_bin.mkdir(parents=True)
    (local_bin / "ocm-manager").write_text("someone else's\n")
    plans = link_all(env, local_bin)
    assert [(p.name, p.action) for p in plans] == [
        ("ocm", Action.CREATE),
        ("ocm-manager", Action.LEAVE),
    ]
    assert (local_bin / "ocm-manager").read_text() == "someone else's\n"


# -- unlink ------------------------------------------------------------------------------

NAMES = ("ocm", "ocm-manager")


def test_unlink_removes_only_links_into_this_environment(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    other_env, env = fake_env("other"), fake_env(names=NAMES)
    link_all(env, local_bin)
    os.unlink(local_bin / "ocm")
    link_all(other_env, local_bin)  # ~/.local/bin/ocm now belongs to another environment
    plans = unlink_all(env, local_bin, NAMES)
    assert [(p.name, p.action) for p in plans] == [
        ("ocm", Action.LEAVE),
        ("ocm-manager", Action.REMOVE),
    ]
    assert os.readlink(local_bin / "ocm") == str(other_env.scripts["ocm"])
    assert not os.path.lexists(local_bin / "ocm-manager")
    assert unlink_message(plans[0]) == (
        f"ocm-cli: left {local_bin / 'ocm'} alone: it is a link to "
        f"{other_env.scripts['ocm']}, not this environment's; "
        "remove it yourself if you no longer need it"
    )
    assert unlink_message(plans[1]) == (
        f"ocm-cli: removed {local_bin / 'ocm-manager'} (a link to {env.scripts['ocm-manager']})"
    )


def test_unlink_leaves_foreign_files_and_dangling_foreign_links(
    fake_env: Callable[..., Environment], local_bin: Path, tmp_path: Path
) -> None:
    env = fake_env()
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").write_text("mine\n")
    (local_bin / "ocm-manager").symlink_to(tmp_path / "elsewhere" / "ocm-manager")
    plans = unlink_all(env, local_bin, NAMES)
    assert [p.action for p in plans] == [Action.LEAVE, Action.LEAVE]
    assert (local_bin / "ocm").read_text() == "mine\n"
    assert (local_bin / "ocm-manager").is_symlink()
    assert "which no longer exists" in unlink_message(plans[1])


def test_unlink_removes_a_dangling_link_into_this_environment(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    link_all(env, local_bin)
    env.scripts["ocm"].unlink()  # e.g. a half-removed environment
    [plan, _] = unlink_all(env, local_bin, NAMES)
    assert plan.action is Action.REMOVE
    assert not os.path.lexists(local_bin / "ocm")


def test_unlink_with_nothing_there_and_twice(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    env = fake_env()
    link_all(env, local_bin)
    assert [p.action for p in unlink_all(env, local_bin, NAMES)] == [Action.REMOVE, Action.ABSENT]
    plans = unlink_all(env, local_bin, NAMES)
    assert [p.action for p in plans] == [Action.ABSENT, Action.ABSENT]
    assert unlink_message(plans[0]) == f"ocm-cli: no {local_bin / 'ocm'}; nothing to remove"


def test_unlink_leaves_a_script_pip_put_in_the_bin_dir(
    fake_env: Callable[..., Environment],
) -> None:
    env = fake_env("user-site", is_venv=False)
    bin_dir = env.prefix / "bin"
    [plan, _] = unlink_all(env, bin_dir, NAMES)
    assert plan.action is Action.REDUNDANT
    assert env.scripts["ocm"].is_file()
    assert "`pip uninstall ocm-cli` removes it" in unlink_message(plan)


# -- PATH --------------------------------------------------------------------------------


def test_path_hint_when_the_bin_dir_is_not_on_path(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    plans = link_all(fake_env(), local_bin)
    hints = path_hints(local_bin, plans, "/usr/bin:/bin")
    assert len(hints) == 2
    assert hints[0].startswith(f"ocm-cli: {local_bin} is not on your PATH; add this line to ")
    assert hints[1] == 'export PATH="$HOME/.local/bin:$PATH"'


def test_no_path_hint_when_the_bin_dir_is_on_path(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    plans = link_all(fake_env(), local_bin)
    assert path_hints(local_bin, plans, f"/usr/bin:{local_bin}:/bin") == []
    assert path_hints(local_bin, plans, "/usr/bin:~/.local/bin") == []


def test_note_when_another_program_of_that_name_comes_first_on_path(
    fake_env: Callable[..., Environment], local_bin: Path, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "ocm").write_text("#!/bin/sh\n")
    (earlier / "ocm").chmod(0o755)
    plans = link_all(fake_env(), local_bin)
    [note] = path_hints(local_bin, plans, f"{earlier}:{local_bin}")
    assert note.startswith(f"ocm-cli: `ocm` on your PATH runs {earlier / 'ocm'}")


def test_no_path_hint_when_nothing_was_linked(
    fake_env: Callable[..., Environment], local_bin: Path
) -> None:
    local_bin.mkdir(parents=True)
    (local_bin / "ocm").write_text("foreign\n")
    plans = link_all(fake_env(), local_bin)
    assert path_hints(local_bin, plans, "/usr/bin") == []


def test_path_hint_for_a_bin_dir_outside_home(
    fake_env: Callable[..., Environment], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "opt bin"
    plans = link_all(fake_env(), bin_dir)
    assert path_hints(bin_dir, plans, "/usr/bin")[1] == f'export PATH="{bin_dir}:$PATH"'
