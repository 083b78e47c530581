"""The one bounded wait the tests use: poll a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 15, message: str = "condition",
               interval: float = 0.1, ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """The first truthy result of `predicate()` within `timeout` seconds; else an AssertionError
    naming `message` and the last result. Exceptions of the `ignoring` types count as falsy
    (e.g. a connection refused while a process starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except ignoring as e:
            result = e  # type: ignore[assignment]
            if time.monotonic() > deadline:
                raise AssertionError(f"{message}: not so within {timeout} s (last: {e!r})") from e
            time.sleep(interval)
            continue
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not so within {timeout} s (last result: {result!r})")
        time.sleep(interval)
