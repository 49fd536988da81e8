"""How roost calls user code: the one place that decides where a callable runs.

Async callables (coroutine functions, or objects whose ``__call__`` is one) run on the event
loop. Sync callables run in a bounded thread pool, so that a handler that blocks (a database
driver, ``time.sleep``, a slow file read) stalls only itself, never every other connection.
A sync callable that is known to be trivial can be put back on the loop with ``@inline``.
Whatever a callable returns that is awaitable is awaited on the loop (and so is what that
returns, so a handler may ``return serve_file(path)`` without awaiting it).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["DEFAULT_SYNC_THREADS", "Caller", "inline", "runs_on_loop"]

F = TypeVar("F", bound=Callable[..., Any])

#: Threads for sync user code in each process, as Starlette's default.
DEFAULT_SYNC_THREADS = 40
_INLINE = "__roost_inline__"


def inline(func: F) -> F:
    """Run the sync callable ``func`` on the event loop instead of the thread pool.

    Only for code that never blocks (no I/O, no locks, microseconds of work): it saves the
    hand-off to a thread (about 60 µs a call on a 2-core machine: ``bench/sync_calls.py``)
    and blocks every connection while it runs.
    """
    try:
        setattr(func, _INLINE, True)
    except AttributeError:  # a bound method or a builtin: wrap it
        wrapped = functools.wraps(func)(lambda *a, **k: func(*a, **k))
        setattr(wrapped, _INLINE, True)
        return wrapped  # type: ignore[return-value]
    return func


def runs_on_loop(func: Callable[..., Any]) -> bool:
    """Whether ``func`` runs on the event loop (async, or marked ``@inline``)."""
    if getattr(func, _INLINE, False):
        return True
    if inspect.iscoroutinefunction(func):
        return True
    call = inspect.getattr_static(func, "__call__", None)  # an object with async __call__
    if call is not None and inspect.iscoroutinefunction(call):
        return True
    while isinstance(func, functools.partial):
        func = func.func
        if inspect.iscoroutinefunction(func):
            return True
    return False


class Caller:
    """Calls user code for one app: async on the loop, sync in a pool of ``max_threads``.

    The pool is created on first use in each process (workers forked by ``--processes`` get
    their own) and shut down by ``close()``.
    """

    __slots__ = ("_executor", "_modes", "_pid", "max_threads")

    def __init__(self, max_threads: int = DEFAULT_SYNC_THREADS) -> None:
        if max_threads < 1:
            raise ValueError("sync_threads must be at least 1")
        self.max_threads = max_threads
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._modes: dict[Any, bool] = {}

    def _pool(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        if self._executor is None or self._pid != pid:
            self._executor = ThreadPoolExecutor(self.max_threads, thread_name_prefix="roost-sync")
            self._pid = pid
        return self._executor

    def on_loop(self, func: Callable[..., Any]) -> bool:
        """Whether ``func`` runs on the loop; decided once per callable."""
        try:
            return self._modes[func]
        except KeyError:
            mode = self._modes[func] = runs_on_loop(func)
            return mode
        except TypeError:  # unhashable callable
            return runs_on_loop(func)

    async def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` where it belongs and return its (awaited) result."""
        if self.on_loop(func):
            result = func(*args, **kwargs)
        else:
            context = contextvars.copy_context()
            result = await asyncio.get_running_loop().run_in_executor(
                self._pool(), functools.partial(context.run, func, *args, **kwargs)
            )
        while inspect.isawaitable(result):  # also what ``return serve_file(...)`` returns
            result = await result
        return result

    def close(self) -> None:
        """Stop the pool; threads still running finish in the background."""
        executor, self._executor = self._executor, None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=False, cancel_futures=True)
