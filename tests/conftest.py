"""Shared fixtures: run an app on a real socket on 127.0.0.1, on the test's own event loop;
a real redis-server on a free port (``redis`` and ``redis_server``, the same)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from roost import Roost
from roost.server.serve import Server
from tests.redis_server import RedisServer
from tests.timing import SCALE


@asynccontextmanager
async def running(app: Roost) -> AsyncIterator[Server]:
    """Serve ``app`` on a free port for the duration of the block."""
    server = await app.create_server("127.0.0.1", 0)
    try:
        yield server
    finally:
        await app.shutdown()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the RSS soaks unless ROOST_SOAK=1; scale pytest-timeout's limit (the ini
    ``timeout``, or a test's own mark) by ROOST_TEST_TIME_SCALE, like every deadline in the
    tests (tests/timing.py)."""
    if os.environ.get("ROOST_SOAK") != "1":
        # Tests that measure a server's RSS over seconds of traffic belong to make soak;
        # make test covers the same fixes with deterministic tests.
        skip = pytest.mark.skip(reason="an RSS soak: run by make soak (ROOST_SOAK=1)")
        for item in items:
            if item.get_closest_marker("soak"):
                item.add_marker(skip)
    if SCALE == 1:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        mark = item.get_closest_marker("timeout")
        limit = float(mark.args[0]) if mark and mark.args else default
        if limit:
            item.add_marker(pytest.mark.timeout(limit * SCALE))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop the tests run on: asyncio's, or uvloop's (what roost serves on in production)
    with ``ROOST_TEST_LOOP=uvloop``."""
    if os.environ.get("ROOST_TEST_LOOP") == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
def serve() -> Callable[[Roost], object]:
    """``async with serve(app) as server:`` then connect to ``server.port``."""
    return running


@pytest.fixture
async def redis() -> AsyncIterator[RedisServer]:
    """A redis-server of its own on a free port, killed and removed after the test."""
    server = RedisServer()
    server.start()
    try:
        await server.ready()
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
async def redis_server(redis: RedisServer) -> RedisServer:
    """The ``redis`` fixture, under the name the hub tests use."""
    return redis
