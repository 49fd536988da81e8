"""Write flow control shared by both kinds of connection: a writer waits while the socket's
buffer is over its high-water mark, and is woken when it drains or the connection ends."""

from __future__ import annotations

import asyncio

__all__ = ["Drain", "settle"]


def settle(waiter: asyncio.Future[None] | None, exc: Exception | None) -> None:
    """Wake whoever waits on ``waiter``, with ``exc`` if given."""
    if waiter is not None and not waiter.done():
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)
            waiter.exception()  # mark retrieved: nobody may be waiting any more


class Drain:
    """What writers await while the transport has paused writing (``pause_writing``)."""

    __slots__ = ("_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Return once ``wake()`` is called; raise what it is given."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
        await waiter

    def wake(self, exc: Exception | None = None) -> None:
        """Wake the writers: the socket drained (``exc`` None) or the connection ended."""
        waiter, self._waiter = self._waiter, None
        settle(waiter, exc)
