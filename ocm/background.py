"""One call run on a thread of its own while the caller goes on: git builds a snapshot
while the requests make their round trips.

What ``concurrent.futures`` offers for this, in a few lines: importing it (and the
``logging`` it imports) took 10 ms of every ``ocm push``, about a fortieth of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Task(Generic[T]):
    """``fn(*args)``, started at once. :meth:`result` waits for its value or raises its
    exception; leaving a ``with`` block waits for the thread, so nothing outlives it."""

    def __init__(self, fn: Callable[..., T], *args: Any) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        # Not Thread.join: interrupted by Ctrl-C, Python 3.11's join marks the thread as
        # ended while it still runs, and a second join then returns at once; the process
        # would exit under a thread still in git, its temporary files left behind.
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(fn, args), daemon=True).start()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def result(self) -> T:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when there is no error

    def __enter__(self) -> Task[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wait()
