"""Connection churn frees every closed connection, on every close path, with and without
permessage-deflate: a closed connection leaves no object behind, not even garbage waiting for
the cycle collector (the server runs with the collector off here)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

from tests.integration.churn import ChurnServer, churn, settled
from tests.timing import seconds

PER_PATH = 15  # clients per close path and compression setting: 330 connections in all


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    srv = await ChurnServer(no_gc=True).ready()
    try:
        yield srv
    finally:
        srv.stop()


async def test_churn_leaves_no_connection_object_behind(server: ChurnServer) -> None:
    warm = await server.objects()  # the request asking has its own HttpConnection and parser
    assert warm["HttpConnection"] == 1 and warm["PerMessageDeflate"] == 0, warm
    for compression in (True, False):
        await churn(server.port, per_path=PER_PATH, compression=compression)
        counts = await settled(server, warm)
        assert counts == warm, f"compression={compression}: left behind {counts}"
    assert await server.objects(collect=True) == warm


async def test_shutdown_leaves_no_connection_object_behind(server: ChurnServer) -> None:
    clients = []
    for compression in (True, False):
        for n in range(10):
            ws = await websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws", compression="deflate" if compression else None
            )
            await ws.send(f"join room-{n % 3}")
            assert await asyncio.wait_for(ws.recv(), seconds(5)) == "joined"
            clients.append(ws)
    counts = await server.objects()
    assert counts["Session"] == 20 and counts["PerMessageDeflate"] == 10, counts
    stop = asyncio.create_task(asyncio.to_thread(server.stop))
    for ws in clients:
        await asyncio.wait_for(ws.wait_closed(), seconds(15))
        assert ws.close_code == 1001
    code, out = await stop
    assert code == 0, out
    report = [line for line in out.splitlines() if line.startswith("live objects after shutdown:")]
    assert report, out
    left = orjson.loads(report[0].partition(":")[2])
    assert not any(left.values()), f"left behind after shutdown: {left}"
