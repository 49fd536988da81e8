"""One scalable unit of time for the tests.

Every deadline a test waits for goes through ``seconds()``; ``ROOST_TEST_TIME_SCALE``
(default 1) multiplies them all, and pytest-timeout's limit too, so a slow CI machine can be
given more time without editing tests: ``ROOST_TEST_TIME_SCALE=3 make test``. Deadlines are
upper bounds for waiting on events, never durations a test asserts.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable


def _scale() -> float:
    raw = os.environ.get("ROOST_TEST_TIME_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise RuntimeError(f"ROOST_TEST_TIME_SCALE={raw!r} is not a number") from None
    if scale <= 0:
        raise RuntimeError("ROOST_TEST_TIME_SCALE must be positive")
    return scale


SCALE = _scale()
#: How often pollers look again (not scaled: it bounds latency, not patience).
POLL_INTERVAL = 0.01


def seconds(value: float) -> float:
    """``value`` seconds, scaled for this machine."""
    return value * SCALE


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    """Poll ``check()`` (sync or async) until it is true, for at most ``seconds(timeout)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(timeout)
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {seconds(timeout):.1f} s")
        await asyncio.sleep(POLL_INTERVAL)


def wait_until(check: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """The blocking form of ``eventually``, for sync tests and subprocess checks."""
    deadline = time.monotonic() + seconds(timeout)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {seconds(timeout):.1f} s")
        time.sleep(POLL_INTERVAL)
