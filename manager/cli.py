"""``ocm-manager``: serve, token rotate, repo add/list/remove (SPEC §4).

Parsing ends here: each adapter turns its Namespace into plain arguments.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from manager import config, options
from manager.config import DataDirError, Settings
from ocm import __version__
from ocm.parser import OptionsFirstParser
from ocm.printable import pad, printable

# A laptop install (no `manager` extra) has the ocm-manager script but not these.
MANAGER_EXTRA_MODULES = frozenset({"flask", "waitress", "werkzeug"})


class CliError(Exception):
    """Raised for a failure the operator can fix; printed as one ``ocm-manager:`` line."""


class _Parser(OptionsFirstParser):
    """argparse that reports a bad command line as one ``ocm-manager:`` line (exit 2), not
    a usage block: the line is what a script's log or a systemd journal shows. No
    abbreviated options: `--del` must not quietly mean `--delete-files`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = self.reworded(message)
        # Option types (manager.options) say what to do themselves; argparse's own do not.
        todo = "" if "; " in message else f"; see `{self.prog} --help`"
        self.exit(2, f"ocm-manager: {message}{todo}\n")


def _data_dir(value: str | None) -> Path:
    """The data dir, absolute: a relative one names a folder where the command was typed,
    and the registry keeps paths under it that must hold from anywhere (a Manager started
    in another folder, OpenCode, which runs in the data dir)."""
    chosen = Path(value).expanduser() if value else config.default_data_dir()
    return Path(os.path.abspath(chosen))


def _existing_data_dir(value: str | None) -> Path:
    """The data dir for a command that only reads it (or removes from it): one that does not
    exist is a typo or a Manager not set up yet, never a wish to make it."""
    data_dir = _data_dir(value)
    nearest = data_dir
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if nearest == data_dir or not nearest.is_dir():
        return data_dir  # there, or under a file: the usual checks say what is wrong
    if value:
        source = " (--data-dir)"
    elif os.environ.get("OCM_MANAGER_DATA_DIR"):
        source = " ($OCM_MANAGER_DATA_DIR)"
    else:
        source = " (the default)"
    raise CliError(
        f"the data dir {data_dir}{source} does not exist; check the path, or make it with"
        f" `{_command('serve', data_dir)}` or `{_command('repo add', data_dir)}"
        " <git-url-or-path>`"
    )


def _command(words: str, data_dir: Path) -> str:
    """``ocm-manager <words>`` as the operator must type it to reach ``data_dir``: with
    ``--data-dir`` unless that is the default (an environment variable may be set only in a
    service's unit file, not in the shell that types the command)."""
    if data_dir == config.platform_data_dir():
        return f"ocm-manager {words}"
    return f"ocm-manager {words} --data-dir {shlex.quote(str(data_dir))}"


def _registry(data_dir: Path):  # type: ignore[no-untyped-def]
    from manager.registry import Registry
    from manager.repos import anchor_relative_directories

    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    registry = Registry(settings.database_path)
    anchor_relative_directories(registry, settings.repos_dir)
    return registry


# -- serve ----------------------------------------------------------------------------------


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, kill) and SIGHUP (a closed terminal) unwind like Ctrl-C, so shutdown
    code always runs and the OpenCode child is stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    # Started under nohup (or by anything else that ignores hang-ups on purpose), a closed
    # terminal must not stop the Manager.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handler)


class _PrintableFormatter(logging.Formatter):
    """Log lines with every control character shown as its escape: a line names what clients
    chose (a branch, a path in a refused pack, a symlink's target), and the log is read on a
    terminal (`tail -f`, or the Manager's own stderr), where ESC could clear the screen or
    write the clipboard. A traceback, the Manager's own text, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record))


def _configure_logging(logs_dir: Path) -> None:
    formatter = _PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.FileHandler(logs_dir / "manager.log"),
        logging.StreamHandler(sys.stderr),
    ]
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=handlers)


def cmd_serve(settings: Settings) -> int:
    # First of all, so that a stop request at any moment, even while the first token is
    # being shown, unwinds through the shutdown code below.
    _stop_on_sigterm()
    try:
        return _serve(settings)
    except KeyboardInterrupt:
        return 0


def _require_git() -> None:
    """The Manager keeps every repo with git: without it, refuse before anything is made
    (the first push would have been "unexpected error", or a 500)."""
    if shutil.which("git") is None:
        raise CliError(
            "cannot run git: it is not installed, or not on the Manager's PATH; install git"
            " (`sudo apt install git`), then run the command again"
        )


def _serve(settings: Settings) -> int:
    from manager.serve_lock import ServeLock

    _require_git()
    settings.ensure_dirs()
    # Before anything else touches the data dir: start-up cleans staging, which would
    # delete the pushes in flight of a Manager already serving it.
    lock = ServeLock(settings.serve_lock_path, settings.data_dir)
    lock.acquire()
    try:
        return _serve_locked(settings)
    finally:
        lock.release()


def _serve_locked(settings: Settings) -> int:
    from manager.app import create_app
    from manager.server import serve
    from manager.tokens import new_token

    _configure_logging(settings.logs_dir)
    app = create_app(settings)
    services = app.services
    registry = services.registry
    from manager.mirror import forget_interrupted_creates

    for name in forget_interrupted_creates(registry):
        logging.getLogger("manager").warning(
            "forgot %s: the `ocm push --create` making it was cut off; it can run again", name
        )
    registry.mark_interrupted_clones()
    if registry.token_hash() is None:
        # Shown once, and only to a person at a terminal: under systemd or a redirect,
        # stdout is a log, and a token must never land in one.
        if sys.stdout.isatty():
            token = new_token(registry)
            rotate = _command("token rotate", settings.data_dir)
            print(
                f"ocm-manager: created the Manager token (shown once; `{rotate}` makes a new"
                f" one):\n{token}",
                flush=True,
            )
        else:
            logging.getLogger("manager").warning(
                "no token yet and stdout is not a terminal, so none is printed; run `%s` to"
                " make one (requests get 401 until then)",
                _command("token rotate", settings.data_dir),
            )
    from manager.opencode import upstream_for

    upstream = upstream_for(
        mode=settings.opencode_mode,
        binary=settings.opencode_bin,
        url=settings.opencode_url,
        password=settings.opencode_password,
        logs_dir=settings.logs_dir,
        workdir=settings.data_dir,
    )
    services.opencode = upstream

    def on_stop() -> None:
        services.stopping.set()
        logging.getLogger("manager").info("stopping")
        app.proxy.end_streams()
        if upstream is not None:
            upstream.stop()

    try:
        if upstream is not None:
            upstream.start()  # in the background: the Manager answers while OpenCode boots
        serve(app, settings, on_stop=on_stop)
    except OSError as exc:
        raise CliError(_cannot_listen(exc, settings)) from None
    finally:
        if upstream is not None:
            upstream.stop()
    return 0


def _cannot_listen(exc: OSError, settings: Settings) -> str:
    """Why binding failed, blaming the option at fault: the port is the usual one, but an
    address this machine does not have (or cannot resolve) is --host's."""
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {settings.host} (--host): {exc.strerror}; give a name or"
            " address of this machine (127.0.0.1: this machine only; 0.0.0.0: all of its"
            " interfaces)"
        )
    where = exc.filename or f"{settings.host}:{settings.port} (--port)"
    return f"cannot listen on {where}: {exc.strerror}; pick another port or stop what uses it"


def _serve_settings(args: argparse.Namespace) -> Settings:
    if args.opencode_url:
        mode = "external"
    elif args.no_opencode:
        mode = "none"
    else:
        mode = "managed"
    password = args.opencode_password or os.environ.get("OCM_OPENCODE_PASSWORD")
    if mode == "external" and not password:
        raise CliError(
            "--opencode-url needs the server's password; set OCM_OPENCODE_PASSWORD"
            " (or --opencode-password)"
        )
    return Settings(
        data_dir=_data_dir(args.data_dir),
        host=args.host,
        port=args.port,
        threads=args.threads,
        opencode_mode=mode,
        opencode_bin=args.opencode_bin,
        opencode_url=args.opencode_url,
        opencode_password=password,
        max_streams=args.max_streams,
        max_upload_bytes=args.max_upload_bytes,
        max_archive_bytes=args.max_archive_bytes,
        max_archive_members=args.max_archive_members,
        web_app_port=_web_app_port(args.web_app_port, args.port, mode),
        web_app_url=args.web_app_url,
        trusted_proxy=args.trusted_proxy,
        head_timeout=args.head_timeout,
        stall_timeout=args.stall_timeout,
    )


def _web_app_port(value: int | str | None, port: int, opencode_mode: str) -> int | None:
    """``--web-app-port``: a port, ``off``, or by default the Manager's port + 1 (any free
    port when the Manager's is 0); never without OpenCode, which is what it serves."""
    if opencode_mode == "none" or value == "off":
        return None
    if value is None:
        return port + 1 if port else 0
    return int(value)


# -- token and repos ------------------------------------------------------------------------


def cmd_token_rotate(data_dir: Path) -> int:
    from manager.tokens import new_token

    registry = _registry(data_dir)
    try:
        replaced = registry.token_hash() is not None
        token = new_token(registry)
    finally:
        registry.close()
    # A first token (a fresh data dir, the quick start's first login) replaces nothing.
    said = "new token made; the old one stops working now" if replaced else "token made"
    print(f"ocm-manager: {said}", file=sys.stderr)
    print(token)
    return 0


def cmd_repo_add(data_dir: Path, source: str, name: str | None, branch: str | None) -> int:
    from manager.repos import RepoError, clone_repo

    # Not the defaults: an empty --name or --branch is more likely a script's unset variable.
    if name == "":
        raise CliError(
            "--name is empty; give a name, or leave --name out to name it after the source"
        )
    if branch == "":
        raise CliError(
            "--branch is empty; give a branch, or leave --branch out for the source's default"
        )
    _require_git()
    settings = Settings(data_dir=data_dir)
    try:
        repo = clone_repo(_registry(data_dir), settings.repos_dir, source, name=name, branch=branch)
    except RepoError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        # clone_repo has undone the row and the partial clone; say so, as main would not.
        print("ocm-manager: interrupted; nothing was added", file=sys.stderr)
        return 130
    print(
        printable(
            f"ocm-manager: added repo {repo.id} {repo.name} ({repo.branch or 'detached'})"
            f" at {repo.directory}"
        )
    )
    return 0


def cmd_repo_list(data_dir: Path, as_json: bool) -> int:
    repos = _registry(data_dir).list_repos()
    if as_json:
        print(json.dumps([repo.as_workspace() | {"error": repo.error} for repo in repos], indent=2))
        return 0
    if not repos:
        print(f"no repos yet; add one with `{_command('repo add', data_dir)} <git-url-or-path>`")
    else:  # headed like `ocm list`
        print(f"{'ID':>4}  {'NAME':<24} {pad('BRANCH', 16)} {'STATUS':<8} FOLDER")
    for repo in repos:
        extra = f"  ({repo.error})" if repo.error else ""
        branch = printable(repo.branch or "-")  # a clone's branch is the source's choice
        print(
            f"{repo.id:>4}  {repo.name:<24} {pad(branch, 16)} {repo.status:<8}"
            f" {printable(f'{repo.directory}{extra}')}"
        )
    return 0


def cmd_repo_remove(data_dir: Path, ref: str, delete_files: bool) -> int:
    from manager.repos import RepoError, remove_repo

    try:
        removed = remove_repo(_registry(data_dir), ref, delete_files=delete_files)
    except RepoError as exc:
        raise CliError(str(exc)) from None
    repo = removed.repo
    files = {
        "deleted": "deleted its files",
        "partial": f"deleted its unfinished clone in {repo.directory}",
        "kept": f"its files stay in {repo.directory}",
        "none": "it had no files",
    }[removed.files]
    left = removed.advice()
    if left:
        raise CliError(f"removed repo {repo.id} {repo.name}, but {left}")
    print(printable(f"ocm-manager: removed repo {repo.id} {repo.name}; {files}"))
    return 0


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ocm-manager", description="The shared ocm Manager server.")
    parser.add_argument("--version", action="version", version=f"ocm-manager {__version__}")
    data_dir = _Parser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=options.data_dir,
        help="where the database, repos and logs live"
        " (default: $OCM_MANAGER_DATA_DIR, else the user data dir)",
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>")

    serve = commands.add_parser("serve", parents=[data_dir], help="run the Manager")
    serve.add_argument(
        "--host",
        type=options.host,
        default=config.DEFAULT_HOST,
        help=f"address to listen on (default {config.DEFAULT_HOST}); beyond loopback, put"
        " a TLS proxy in front",
    )
    serve.add_argument(
        "--port",
        type=options.port,
        default=config.DEFAULT_PORT,
        help=f"port to listen on, 0 for any free one (default {config.DEFAULT_PORT})",
    )
    serve.add_argument(
        "--threads",
        type=options.threads,
        default=config.DEFAULT_THREADS,
        help=f"worker threads for ordinary requests, 1-{options.MAX_THREADS} (default"
        f" {config.DEFAULT_THREADS}); event streams get --max-streams more",
    )
    serve.add_argument(
        "--max-streams",
        type=options.streams,
        default=config.DEFAULT_MAX_STREAMS,
        help=f"open event streams (attached TUIs) allowed at once, 1-{options.MAX_STREAMS};"
        f" more get 503 (default {config.DEFAULT_MAX_STREAMS})",
    )
    serve.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        type=options.ip_address,
        # A string default goes through `type` too: the variable is checked like the option.
        default=os.environ.get("OCM_MANAGER_TRUSTED_PROXY") or None,
        help="the reverse proxy terminating TLS in front of the Manager: its X-Forwarded-Proto"
        " and X-Forwarded-For are believed (Secure cookies, sign-in limits per browser);"
        " default $OCM_MANAGER_TRUSTED_PROXY, else none",
    )
    clients = serve.add_argument_group("slow and silent clients")
    clients.add_argument(
        "--head-timeout",
        type=options.seconds,
        default=config.DEFAULT_HEAD_TIMEOUT,
        help="seconds a connection that has not shown the token gets to send a request"
        f" (default {config.DEFAULT_HEAD_TIMEOUT:g})",
    )
    clients.add_argument(
        "--stall-timeout",
        type=options.seconds,
        default=config.DEFAULT_STALL_TIMEOUT,
        help="seconds an answer may wait for a client that stops reading it (a pull to a"
        f" laptop that sleeps) before it is cut (default {config.DEFAULT_STALL_TIMEOUT:g})",
    )
    limits = serve.add_argument_group("mirror limits (ocm push)")
    limits.add_argument(
        "--max-upload-bytes",
        type=options.size,
        default=config.DEFAULT_MAX_UPLOAD_BYTES,
        help="largest request body accepted, compressed (default 4 GiB)",
    )
    limits.add_argument(
        "--max-archive-bytes",
        type=options.size,
        default=config.DEFAULT_MAX_ARCHIVE_BYTES,
        help="largest total size of the files a pushed snapshot holds, unchanged ones included"
        " (default 8 GiB)",
    )
    limits.add_argument(
        "--max-archive-members",
        type=options.size,
        default=config.DEFAULT_MAX_ARCHIVE_MEMBERS,
        help="most git objects in a pushed pack (default 5000000)",
    )
    upstream = serve.add_mutually_exclusive_group()
    upstream.add_argument(
        "--opencode-bin",
        type=options.executable,
        help="the opencode executable to start (default: opencode on PATH, else the installed"
        " copy)",
    )
    upstream.add_argument(
        "--opencode-url", type=options.http_url, help="use this running OpenCode server instead"
    )
    upstream.add_argument(
        "--no-opencode", action="store_true", help="run without OpenCode (the proxy answers 503)"
    )
    serve.add_argument(
        "--opencode-password", help="password of --opencode-url (prefer env OCM_OPENCODE_PASSWORD)"
    )
    web_app = serve.add_argument_group("OpenCode's web app (behind the console's sign-in)")
    web_app.add_argument(
        "--web-app-port",
        metavar="PORT|off",
        type=options.port_or_off,
        help="port of the listener that serves OpenCode's web app (default: --port + 1)",
    )
    web_app.add_argument(
        "--web-app-url",
        metavar="URL",
        type=options.http_url,
        help="the app's address as browsers reach it, when a TLS proxy publishes it"
        " (for the console's links)",
    )
    serve.set_defaults(run=lambda a: cmd_serve(_serve_settings(a)))

    token = commands.add_parser("token", help="manage the Manager token")
    token_commands = token.add_subparsers(dest="token_command", metavar="<command>")
    rotate = token_commands.add_parser(
        "rotate", parents=[data_dir], help="print a new token; the old one stops working"
    )
    rotate.set_defaults(run=lambda a: cmd_token_rotate(_data_dir(a.data_dir)))

    repo = commands.add_parser("repo", help="manage the Manager's repos")
    repo_commands = repo.add_subparsers(dest="repo_command", metavar="<command>")
    add = repo_commands.add_parser("add", parents=[data_dir], help="clone a repo")
    add.add_argument("source", help="git URL or local path")
    add.add_argument(
        "--name",
        help="the repo's name on the Manager and its folder under repos/ (default: the last"
        " part of the source, without .git); up to 100 letters, digits, '.', '_', '-', not"
        " digits alone",
    )
    add.add_argument(
        "--branch", help="the branch to check out (default: the source's default branch)"
    )
    add.set_defaults(run=lambda a: cmd_repo_add(_data_dir(a.data_dir), a.source, a.name, a.branch))
    listing = repo_commands.add_parser("list", parents=[data_dir], help="list repos")
    listing.add_argument(
        "--json",
        action="store_true",
        help="print JSON: each repo as the repo list clients get (repoId, name, branch,"
        " cloneStatus, directory, originUrl), plus its error",
    )
    listing.set_defaults(run=lambda a: cmd_repo_list(_existing_data_dir(a.data_dir), a.json))
    remove = repo_commands.add_parser("remove", parents=[data_dir], help="forget a repo")
    remove.add_argument("ref", metavar="id|name")
    remove.add_argument("--delete-files", action="store_true", help="also delete its working tree")
    remove.set_defaults(
        run=lambda a: cmd_repo_remove(_existing_data_dir(a.data_dir), a.ref, a.delete_files)
    )
    for sub in (parser, token, repo):
        sub.set_defaults(help_parser=sub)
    for command in (serve, rotate, add, listing, remove):
        command.set_defaults(help_prog=command.prog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would name the top parser's help: the command's says what it takes
        parser.prog = getattr(args, "help_prog", parser.prog)
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not hasattr(args, "run"):
        args.help_parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except (CliError, DataDirError) as exc:
        print(f"ocm-manager: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ocm-manager repo list | head`: the reader left; silence the flush at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name in MANAGER_EXTRA_MODULES:
            print(
                f"ocm-manager: the Manager's dependencies are not installed ({exc.name} is"
                " missing); install with `python3 -m install --manager` or"
                " `pip install 'ocm-cli[manager]'`",
                file=sys.stderr,
            )
            return 1
        if os.environ.get("OCM_DEBUG") == "1":
            raise
        print(
            f"ocm-manager: unexpected error: {exc.__class__.__name__}: {printable(str(exc))};"
            " rerun with OCM_DEBUG=1 for details",
            file=sys.stderr,
        )
        return 1
