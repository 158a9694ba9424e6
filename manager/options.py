"""What each ``ocm-manager`` option accepts: argparse ``type=`` functions with their bounds.

The one place option values are checked. A value out of bounds is a usage error at once,
before anything starts: unchecked, ``--threads 0`` served requests that never ran,
``--port 70000`` wrapped to another port and ``--max-upload-bytes 0`` refused every push.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

MAX_PORT = 65535
# Waitress starts threads + max_streams workers up front; thousands more than that cost
# memory for nothing, and far more fail to start at all (the process aborts).
MAX_THREADS = 1000
MAX_STREAMS = 5000


def _within(value: str, low: int, high: int | None, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        bounds = f"{low}-{high}" if high is not None else f"a whole number, {low} or more"
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}; give {bounds}")
    return number


def port(value: str) -> int:
    """A TCP port; 0 asks the system for any free one."""
    return _within(value, 0, MAX_PORT, "a port")


def port_or_off(value: str) -> int | str:
    return "off" if value == "off" else _within(value, 0, MAX_PORT, "a port or `off`")


def threads(value: str) -> int:
    return _within(value, 1, MAX_THREADS, "a thread count")


def streams(value: str) -> int:
    return _within(value, 1, MAX_STREAMS, "a stream count")


def size(value: str) -> int:
    return _within(value, 1, None, "a size")


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a time; give seconds above 0")
    return number


def host(value: str) -> str:
    """An address or name to listen on that resolves (waitress' own check, made early)."""
    name = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        if not name:
            raise OSError
        socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an address or host name of this machine; give one such as"
            " 127.0.0.1 or ::1"
        ) from None
    return name


def ip_address(value: str) -> str:
    """One IP address, written as the peer's address will be (waitress compares strings)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IP address; give the address the proxy connects from,"
            " such as 127.0.0.1"
        ) from None


def http_url(value: str) -> str:
    """An ``http(s)://host[:port][/path]`` URL that a connection can be made to."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises for a port out of range
        # UnicodeError, a ValueError, for a host no lookup can take (a..b, a part over 63)
        (parts.hostname or "").encode("idna")
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        # parsing drops a tab or a newline without a word; a space breaks the request line
        or any(char.isspace() or not char.isprintable() for char in value)
    ):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL; give one such as https://ocm.example.com"
        )
    return value


def executable(value: str) -> str:
    """A program to start: a path to an executable file, or a name found on PATH. Refused
    here rather than at start: a Manager started anyway would serve without OpenCode, and
    say why only in its log."""
    path = Path(value).expanduser()
    if os.sep not in value and not value.startswith("~"):
        found = shutil.which(value)
        if found:
            return found
        raise argparse.ArgumentTypeError(
            f"{value!r} is not on PATH; give the path of the opencode executable"
        )
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    why = "is not an executable file" if path.exists() else "does not exist"
    raise argparse.ArgumentTypeError(
        f"{value!r} {why}; give the path of the opencode executable, or leave --opencode-bin"
        " out to use `opencode` on PATH or the installed copy"
    )


def data_dir(value: str) -> str:
    # An empty value is an unset variable (`--data-dir "$UNSET"`), never a wish for the
    # default: taken as one, `token rotate` would rotate the real Manager's token.
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "is empty (an unset variable?); give a folder, or leave --data-dir out for the default"
        )
    return value
