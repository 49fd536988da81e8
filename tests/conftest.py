"""Shared fixtures: run an app on a real socket on 127.0.0.1, on the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from roost import Roost
from roost.server.serve import Server


@asynccontextmanager
async def running(app: Roost) -> AsyncIterator[Server]:
    """Serve ``app`` on a free port for the duration of the block."""
    server = await app.create_server("127.0.0.1", 0)
    try:
        yield server
    finally:
        await app.shutdown()


@pytest.fixture
def serve() -> Callable[[Roost], object]:
    """``async with serve(app) as server:`` then connect to ``server.port``."""
    return running
