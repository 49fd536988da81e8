"""Graceful shutdown: pending handshakes get 503, open connections 1001, nothing sent is lost."""

from __future__ import annotations

import asyncio

import websockets

from roost import Roost


async def test_shutdown_flushes_then_closes_1001_and_runs_on_close(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    closed: list[str] = []
    sent = asyncio.Event()

    @app.websocket("/feed", ping_interval=None)
    async def feed(websocket):  # type: ignore[no-untyped-def]
        for i in range(500):
            await websocket.send_text(f"{i:04d}" + "x" * 1000)
        sent.set()
        while True:
            await websocket.receive()

    @feed.on_close
    async def gone(websocket):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)  # on_close may await; shutdown waits for it
        closed.append(websocket.id)

    async with serve(app) as server:
        port = server.port
        clients = [await websockets.connect(f"ws://127.0.0.1:{server.port}/feed") for _ in range(3)]
        await asyncio.wait_for(sent.wait(), 5)
        # A handshake in progress: headers half sent when shutdown starts.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        await asyncio.sleep(0.05)
        shutdown = asyncio.create_task(app.shutdown())
        await asyncio.sleep(0.05)
        writer.write(
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        reply = await asyncio.wait_for(reader.read(), 5)
        assert reply.startswith(b"HTTP/1.1 503")
        for ws in clients:
            received = [m async for m in ws]  # iterates until the close frame
            assert [m[:4] for m in received] == [f"{i:04d}" for i in range(500)]
            assert ws.close_code == 1001
        await asyncio.wait_for(shutdown, 15)
        assert len(closed) == 3
        # The listener is closed: new connections are refused.
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            raise AssertionError("the server still accepts connections after shutdown")
