"""What running a sync handler in the thread pool costs against ``@inline``, per call.

    bench/.venv/bin/python bench/sync_calls.py

Times ``Caller.call`` on a trivial sync function on uvloop, both ways, after a warm-up.
"""

from __future__ import annotations

import time

import uvloop

from roost.calls import Caller, inline

CALLS = 20_000


def pooled() -> int:
    return 1


@inline
def on_loop() -> int:
    return 1


async def main() -> None:
    caller = Caller()
    try:
        for func, name in ((pooled, "thread pool"), (on_loop, "@inline")):
            for _ in range(CALLS // 10):
                await caller.call(func)
            start = time.perf_counter()
            for _ in range(CALLS):
                await caller.call(func)
            elapsed = time.perf_counter() - start
            print(f"{name}: {elapsed / CALLS * 1e6:.1f} µs per call")
    finally:
        caller.close()


if __name__ == "__main__":
    uvloop.run(main())
