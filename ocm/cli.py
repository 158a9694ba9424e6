"""The ``ocm`` entry point: runs a command and is the one place errors are printed.

Every :class:`~ocm.errors.OcmError` becomes one ``ocm: <what>; <what to do>`` line on stderr
and its exit code; anything else is a bug, shown as a traceback only with ``OCM_DEBUG=1``.
``--version``, ``status`` and a plain ``push`` or ``pull`` skip argparse
(:func:`_fast_path`); everything else goes through :mod:`ocm.parser`. The executable is
:func:`run`, which also skips Python's teardown.
"""

from __future__ import annotations

import errno
import os
import sys

from ocm import __version__
from ocm.errors import ExitCode, OcmError

TYPE_CHECKING = False  # typing costs a few ms at run time; only the checker needs it
if TYPE_CHECKING:
    from collections.abc import Sequence


def _debug() -> bool:
    return os.environ.get("OCM_DEBUG", "") not in ("", "0")


def _say(line: str) -> None:
    from ocm.printable import printable  # noqa: PLC0415 - only when failing: not on the fast path

    try:  # noqa: SIM105 - contextlib would be one more import on the fast path
        print(f"ocm: {printable(line)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed: nothing left to tell
        pass


def _fast_path(argv: Sequence[str]) -> int | None:
    """``--version``, ``status [--json]`` and a plain ``push`` or ``pull`` without building
    the parser.

    Importing argparse and building the parser is most of what the first two cost, and
    15 ms of the everyday push and pull; the result is the same as through argparse (tests
    compare both), anything else goes the long way.
    """
    args = list(argv)
    if args == ["--version"]:
        sys.stdout.write(f"ocm {__version__}\n")
        return ExitCode.OK
    if args in (["status"], ["status", "--json"]):
        from ocm.commands.status import status

        return status(as_json=len(args) == 2)
    if args == ["push"]:
        from ocm.commands.mirror import push

        return push(force=False, create=False, yes=False, name=None)
    if args == ["pull"]:
        from ocm.commands.mirror import pull

        return pull(force=False)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ocm; returns the exit code (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    try:
        fast = _fast_path(sys.argv[1:] if argv is None else argv)
        if fast is not None:
            return fast
        from ocm.parser import parse

        args = parse(argv)
        return int(args.handler(args))
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except OcmError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        _say(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `ocm list | head`: the reader left; silence the flush at exit too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.FAILURE
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            _say(_disk_full(exc))
            return ExitCode.FAILURE
        from ocm.mirror.errors import NOT_ALLOWED  # noqa: PLC0415 - only when failing

        if exc.errno in NOT_ALLOWED and exc.filename:  # a file of the user's, not a bug
            _say(f"{exc.filename}: {exc.strerror}; fix the permissions there, then run it again")
            return ExitCode.FAILURE
        return _unexpected(exc)
    except Exception as exc:
        return _unexpected(exc)


# A write that failed for want of space: what it wrote (the output, most often) is lost.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_full(exc: OSError) -> str:
    return (
        f"cannot write the output ({exc.strerror or exc}); free some space, or write it elsewhere"
    )


def _unexpected(exc: Exception) -> int:
    if _debug():
        import traceback

        traceback.print_exc()
    _say(
        f"unexpected error ({exc.__class__.__name__}); run again with OCM_DEBUG=1 "
        "for the traceback, and report it"
    )
    return ExitCode.FAILURE


def run() -> None:
    """The ``ocm`` executable: :func:`main`, then out without tearing the interpreter down.

    Python's orderly exit frees every module and object one by one: 25-40 ms after each
    command on a 2-core VM, a tenth of a one-file push. ocm needs none of it: its files are
    closed by their ``with`` blocks and its threads joined before :func:`main` returns, so
    only the standard streams are left to flush.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `ocm list | head`: the reader left, content with what it read
        pass
    except OSError as exc:  # a full disk: the output is lost, and that is a failure
        _say(_disk_full(exc))
        code = code or ExitCode.FAILURE
    except ValueError:  # closed: nothing more to say
        pass
    try:  # noqa: SIM105 - as in _say: one import less
        sys.stderr.flush()
    except (OSError, ValueError):  # closed, or its reader left: nothing more to say
        pass
    os._exit(code)
