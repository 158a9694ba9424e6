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
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> T:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when there is no error

    def __enter__(self) -> Task[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wait()
