"""Questions asked on the terminal.

An answer cut short (Ctrl-C, Ctrl-D) leaves the cursor after the question: the line is ended
here, so that what ocm says next starts a line of its own.
"""

from __future__ import annotations

import sys

from ocm.printable import printable


def ask(question: str, *, hidden: bool = False) -> str:
    """The answer typed after ``question`` on stderr (not echoed if ``hidden``); "" when the
    input ends (Ctrl-D) before a line does."""
    try:
        if hidden:
            import getpass  # noqa: PLC0415

            return getpass.getpass(question)  # EOFError on Ctrl-D
        sys.stderr.write(printable(question))
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise EOFError
        return answer
    except EOFError:
        _end_line()
        return ""
    except KeyboardInterrupt:
        _end_line()
        raise


def _end_line() -> None:
    sys.stderr.write("\n")
    sys.stderr.flush()
