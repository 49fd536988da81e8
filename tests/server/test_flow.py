"""Drain and settle: how writers wait for the socket to drain, and learn that it never will."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from roost.protocol.errors import ClientDisconnected
from roost.server.flow import Drain, settle

#: A test that breaks fails in seconds instead of hanging on an event that never comes.
pytestmark = pytest.mark.timeout(10)


async def test_wait_returns_once_woken() -> None:
    drain = Drain(asyncio.get_running_loop())
    waiting = asyncio.ensure_future(drain.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    drain.wake()
    await waiting


async def test_one_wake_releases_every_writer() -> None:
    drain = Drain(asyncio.get_running_loop())
    writers = [asyncio.ensure_future(drain.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    drain.wake()
    await asyncio.gather(*writers)


async def test_wake_with_an_exception_raises_it_in_the_writers() -> None:
    drain = Drain(asyncio.get_running_loop())
    writers = [asyncio.ensure_future(drain.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    drain.wake(ClientDisconnected("gone"))
    for writer in writers:
        with pytest.raises(ClientDisconnected, match="gone"):
            await writer


async def test_a_wake_is_not_remembered() -> None:
    """A writer waits only after seeing writing paused; a wake before that is for nobody."""
    drain = Drain(asyncio.get_running_loop())
    drain.wake()
    drain.wake(ClientDisconnected("gone"))  # nobody waits: nothing is raised or logged
    waiting = asyncio.ensure_future(drain.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    drain.wake()
    await waiting
    again = asyncio.ensure_future(drain.wait())  # the next pause needs the next wake
    await asyncio.sleep(0)
    assert not again.done()
    drain.wake()
    await again


async def test_a_cancelled_writer_leaves_the_drain_usable() -> None:
    drain = Drain(asyncio.get_running_loop())
    cancelled = asyncio.ensure_future(drain.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    waiting = asyncio.ensure_future(drain.wait())
    await asyncio.sleep(0)
    drain.wake()
    await waiting
    drain.wake(ClientDisconnected("gone"))  # no waiter left, the cancelled one is done


async def test_settle() -> None:
    loop = asyncio.get_running_loop()
    settle(None, None)
    settle(None, ClientDisconnected("gone"))
    ok: asyncio.Future[None] = loop.create_future()
    settle(ok, None)
    assert ok.result() is None
    settle(ok, ClientDisconnected("late"))  # a done future is left as it is
    assert ok.result() is None
    failed: asyncio.Future[None] = loop.create_future()
    settle(failed, ClientDisconnected("gone"))
    assert isinstance(failed.exception(), ClientDisconnected)


async def test_settled_exception_nobody_awaits_is_not_logged() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        waiter: asyncio.Future[None] | None = loop.create_future()
        settle(waiter, ClientDisconnected("gone"))
        del waiter
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
