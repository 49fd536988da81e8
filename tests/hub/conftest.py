"""Fixtures for the hub's tests: a real redis-server on a free port."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from tests.redis_server import RedisServer


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        await server.ready()
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)
