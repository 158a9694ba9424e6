"""Command line of the installer: parsing ends here; each command is a plain function."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from install import environment, links, opencode, paths, venv
from install.errors import PROGRAM, InstallError

USAGE = """\
python3 -m install [--venv DIR] [--manager] [--editable] [--no-opencode] [--force]
                         [--bin-dir DIR]
       python -m install link [--force] [--bin-dir DIR]
       python -m install unlink [--bin-dir DIR]"""

DESCRIPTION = """\
Without a command (run from a checkout): create or update ocm's own virtual environment,
install the checkout into it (pip is skipped when it already holds this code), install the
pinned OpenCode there when no supported `opencode` is found, then link `ocm` into
~/.local/bin.

  link     link this Python environment's `ocm` (and `ocm-manager` when the Manager is
           installed) into ~/.local/bin; run it after a plain `pip install`
  unlink   remove those links again; links that point elsewhere are left alone
"""


def _bin_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bin-dir",
        metavar="DIR",
        help=f"where the links go (default: ${paths.BIN_DIR_ENV}, else ~/.local/bin)",
    )


def _install_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m install",
        usage=USAGE,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--venv",
        metavar="DIR",
        help=f"the virtual environment to create or update (default: ${paths.VENV_ENV}, "
        "else $XDG_DATA_HOME/ocm/venv, else ~/.local/share/ocm/venv)",
    )
    parser.add_argument(
        "--manager",
        action="store_true",
        help="also install the Manager (`ocm-manager`, the `manager` extra)",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="install the checkout in editable mode, for development",
    )
    parser.add_argument(
        "--no-opencode",
        action="store_true",
        help="do not install the pinned OpenCode (opencode-ai from npm) into the environment",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing file or link that is not ours"
    )
    _bin_dir_option(parser)
    return parser


def _link_parser(command: str) -> argparse.ArgumentParser:
    if command == "link":
        parser = argparse.ArgumentParser(
            prog="python -m install link",
            description="Link this environment's `ocm` (and `ocm-manager`) into ~/.local/bin.",
        )
        parser.add_argument(
            "--force", action="store_true", help="replace an existing file or link that is not ours"
        )
    else:
        parser = argparse.ArgumentParser(
            prog="python -m install unlink",
            description="Remove the links into this environment from ~/.local/bin.",
        )
    _bin_dir_option(parser)
    return parser


def install(
    *,
    venv_dir: Path,
    bin_dir: Path,
    manager: bool,
    editable: bool,
    force: bool,
    with_opencode: bool = True,
) -> int:
    """``python3 -m install``: environment, package, OpenCode, then the link hook.

    A failure to install OpenCode still links ``ocm`` (it works with any supported
    ``opencode`` found later) and is reported last, with exit status 1.
    """
    checkout = venv.checkout_dir()
    venv.ensure_venv(venv_dir)
    venv.pip_install(venv_dir, checkout, manager=manager, editable=editable)
    problem: InstallError | None = None
    if with_opencode:
        try:
            opencode.ensure(venv_dir)
        except InstallError as err:
            problem = err
    else:
        print(f"{PROGRAM}: --no-opencode: not installing OpenCode", flush=True)
    status = venv.run_link_hook(venv_dir, force=force, bin_dir=bin_dir)
    if problem is not None:
        raise problem
    return status


def link(*, bin_dir: Path, force: bool) -> int:
    """``python -m install link``: exit 1 when something foreign kept a name from being linked."""
    plans = links.link_all(environment.current(), bin_dir, force=force)
    for plan in plans:
        stream = sys.stderr if plan.action is links.Action.LEAVE else sys.stdout
        print(links.link_message(plan), file=stream)
    for line in links.path_hints(bin_dir, plans):
        print(line)
    return 1 if any(plan.action is links.Action.LEAVE for plan in plans) else 0


def unlink(*, bin_dir: Path) -> int:
    """``python -m install unlink``: only links into this environment go."""
    for plan in links.unlink_all(environment.current(), bin_dir, environment.SCRIPT_NAMES):
        print(links.unlink_message(plan))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in ("link", "unlink"):
            options = _link_parser(args[0]).parse_args(args[1:])
            bin_dir = paths.bin_dir(options.bin_dir)
            if args[0] == "link":
                return link(bin_dir=bin_dir, force=options.force)
            return unlink(bin_dir=bin_dir)
        options = _install_parser().parse_args(args)
        return install(
            venv_dir=paths.venv_dir(options.venv),
            bin_dir=paths.bin_dir(options.bin_dir),
            manager=options.manager,
            editable=options.editable,
            force=options.force,
            with_opencode=not options.no_opencode,
        )
    except InstallError as err:
        print(err.line(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line, the traceback only on request
        if os.environ.get("OCM_DEBUG") == "1":
            raise
        print(
            f"{PROGRAM}: unexpected error: {err!r}; rerun with OCM_DEBUG=1 and report it",
            file=sys.stderr,
        )
        return 1
