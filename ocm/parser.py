"""The ``ocm`` argument parser and the thin adapter for each command.

Kept apart from :mod:`ocm.cli` so that ``--version`` and ``status`` can skip importing
argparse. Command modules are imported only when their command runs. No ``Namespace``
leaves this module: each adapter calls a command function with typed keyword arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

from ocm import __version__
from ocm.errors import UsageError

TYPE_CHECKING = False  # typing costs a few ms at run time; only the checker needs it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from _typeshed import SupportsWrite


class OptionsFirstParser(argparse.ArgumentParser):
    """argparse whose error names a mistyped option before a missing argument: argparse
    checks for missing positionals first, so for `ocm login --bogus` "required: url" would
    hide the option that was mistyped. Both CLIs' parsers build on it."""

    _args: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override] # one signature for its overloads
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> Any:
        self._args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def reworded(self, message: str) -> str:
        """argparse's ``message``, or the unknown options when it names a missing argument."""
        unknown = _unknown_options(self, self._args)
        if unknown and message.startswith("the following arguments are required"):
            return f"unrecognized arguments: {' '.join(unknown)}"
        return message


class _Parser(OptionsFirstParser):
    """argparse that reports a bad command line as one ``ocm:`` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.reworded(message), f"see `{self.prog} --help`")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops a failed write silently; ocm.cli reports a full disk instead.
        if message:
            (file or sys.stderr).write(message)


def _unknown_options(parser: argparse.ArgumentParser, args: Sequence[str]) -> list[str]:
    """The words in ``args`` that look like options ``parser`` does not take (up to ``--``)."""
    unknown = []
    for arg in args:
        if arg == "--":
            break
        if parser._negative_number_matcher.match(arg):
            continue  # a positional, for a parser with no options that look like numbers
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
            if name not in parser._option_string_actions:
                unknown.append(arg)
    return unknown


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed, or a UsageError. argparse reports a command's unknown options from
    the top parser, which would point at `ocm --help`: the command's own help says what it
    takes."""
    parser = build_parser()
    parsed, extras = parser.parse_known_args(argv)
    if extras:
        where = getattr(parsed, "help_prog", parser.prog)
        raise UsageError(f"unrecognized arguments: {' '.join(extras)}", f"see `{where} --help`")
    return parsed


class _Formatter(argparse.HelpFormatter):
    """Help text formatting with the terminal width read through ``os``.

    argparse builds a formatter for every ``add_argument`` and, without a width, imports
    ``shutil`` (and with it bz2/lzma) just to ask for the terminal size.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(1).columns
            except (ValueError, OSError):
                width = 80
            width = max(width - 2, 40)
        super().__init__(prog, indent_increment, max_help_position, width)


class _RawFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the top-level description and the environment list as written."""


# ------------------------------------------------------------------ adapters


def _login(args: argparse.Namespace) -> int:
    from ocm.commands.login import login

    return login(
        url=args.url,
        token=args.token,
        insecure_storage=args.insecure_storage,
        verify=not args.no_verify,
    )


def _logout(args: argparse.Namespace) -> int:
    from ocm.commands.login import logout

    return logout()


def _status(args: argparse.Namespace) -> int:
    from ocm.commands.status import status

    return status(as_json=args.json)


def _list(args: argparse.Namespace) -> int:
    from ocm.commands.repos import list_repos

    return list_repos(as_json=args.json)


def _use(args: argparse.Namespace) -> int:
    from ocm.commands.repos import use

    return use(repo=args.repo)


def _attach(args: argparse.Namespace) -> int:
    from ocm.commands.repos import attach_default

    return attach_default()


def _push(args: argparse.Namespace) -> int:
    from ocm.commands import mirror

    if args.name is not None and not args.create:
        raise UsageError("--name names the repo --create makes", "add --create, or drop --name")
    return mirror.push(force=args.force, create=args.create, yes=args.yes, name=args.name)


def _pull(args: argparse.Namespace) -> int:
    from ocm.commands import mirror

    return mirror.pull(force=args.force)


# ------------------------------------------------------------------ parser

DESCRIPTION = """\
Attach the OpenCode TUI on this machine to a repo on an ocm Manager, and mirror the current
checkout up to the Manager and back.

Without a command, ocm picks the Manager repo that matches this checkout (by its origin, or
without one by its root commit; else the last one used) and opens the TUI on it."""

EPILOG = """\
environment:
  OPENCODE_MANAGER_URL  Manager URL, overrides the one saved by `ocm login`
  OCM_TOKEN             token, overrides the keyring and credentials.json
  OCM_CONFIG_DIR        config dir (default $XDG_CONFIG_HOME/opencode-manager)
  OCM_OPENCODE_BIN      the opencode executable (default: `opencode` on PATH, then
                        ocm's own copy)
  OCM_DEBUG=1           show tracebacks"""


def build_parser() -> argparse.ArgumentParser:
    # No abbreviated options: `--forc` must not quietly mean `--force`.
    parser = _Parser(
        prog="ocm",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_RawFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"ocm {__version__}")
    parser.set_defaults(handler=_attach)
    # An explicit prog spares argparse a formatter (and importing shutil) at build time.
    sub = parser.add_subparsers(title="commands", metavar="<command>", prog="ocm")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            formatter_class=_Formatter,
            allow_abbrev=False,
        )
        cmd.set_defaults(handler=handler, help_prog=f"ocm {name}")
        return cmd

    cmd = command(
        "login",
        _login,
        "save a Manager URL and token",
        "Verify TOKEN against the Manager at URL and save both. Without TOKEN, "
        "ocm asks for it (hidden) on a terminal, else reads it from stdin.",
    )
    cmd.add_argument("url", help="the Manager URL, with scheme (https://… or http://…)")
    cmd.add_argument(
        "token",
        nargs="?",
        help="the Manager token (prefer the prompt or stdin: "
        "arguments are visible to other local users)",
    )
    cmd.add_argument(
        "--insecure-storage",
        action="store_true",
        help="save the token in credentials.json (0600) even if a keyring exists",
    )
    cmd.add_argument(
        "--no-verify",
        action="store_true",
        help="save without checking the token against the Manager",
    )

    command("logout", _logout, "forget the token and state for the current Manager")

    cmd = command(
        "status", _status, "show the Manager (and whether it answers), token store and last repo"
    )
    cmd.add_argument("--json", action="store_true", help="print JSON")

    cmd = command("list", _list, "list the ready repos on the Manager")
    cmd.add_argument("--json", action="store_true", help="print JSON")

    cmd = command(
        "use",
        _use,
        "attach the TUI to a repo by id or name, and remember it",
        "Find the repo (id first, then exact name, then case-insensitive name), "
        "remember it as the last one used, and attach the TUI to it.",
    )
    cmd.add_argument("repo", metavar="<repoId|name>")

    cmd = command("push", _push, "mirror this checkout up to its Manager repo")
    cmd.add_argument(
        "--force",
        action="store_true",
        help="overwrite Manager-side changes (they are stashed/backed up first)",
    )
    cmd.add_argument(
        "--create",
        action="store_true",
        help="create the Manager repo when none matches this checkout (by origin, else root "
        "commit)",
    )
    cmd.add_argument(
        "--name",
        metavar="N",
        help="with --create: the new repo's name (default: this checkout's folder name)",
    )
    cmd.add_argument("--yes", action="store_true", help="do not ask before creating")

    cmd = command("pull", _pull, "mirror the Manager repo down into this checkout")
    cmd.add_argument(
        "--force",
        action="store_true",
        help="overwrite local changes (they are stashed/backed up first)",
    )
    return parser
