"""Waiting for a condition, never for a time: how the end-to-end tests sequence.

A wait has a generous timeout, and running past it fails the test with what was
awaited and the logs that tell why. That timeout is not a claim about speed: on a
healthy machine the condition holds long before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 60.0


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = TIMEOUT,
    context: Callable[[], object] = lambda: "",
) -> T:
    """Ask `condition()` every 0.05 s until it returns something true, and return that.

    Past `timeout` seconds, fail with `what` (the condition, in words) and `context()`
    (the server's or worker's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}\n{context()}")
        time.sleep(0.05)
