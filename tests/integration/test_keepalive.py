"""Server pings find dead peers; idle timeouts close quiet ones; live peers stay."""

from __future__ import annotations

import asyncio

import websockets

from roost import Roost
from tests.raw_ws import connect, read_frame


def make_app(closed: list[int | None], **options: object) -> Roost:
    app = Roost(__file__)

    @app.websocket("/ws", **options)
    async def ws(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    @ws.on_close
    def gone(websocket):  # type: ignore[no-untyped-def]
        closed.append(websocket.close_code)

    return app


async def wait_for(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_unanswered_pings_close_with_1011(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, ping_interval=0.1, ping_timeout=0.2)) as server:
        reader, writer, _ = await connect(server.port, "/ws")
        opcode, _ = await read_frame(reader)
        assert opcode == 9  # a ping, which this peer never answers
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 8:
                assert int.from_bytes(payload[:2], "big") == 1011
                break
        await wait_for(lambda: closed == [1011])
        writer.close()


async def test_answered_pings_keep_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, ping_interval=0.05, ping_timeout=0.1)) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            for i in range(10):  # spans many ping intervals
                await asyncio.sleep(0.05)
                await ws.send(f"still {i}")
                assert await ws.recv() == f"still {i}"
        await wait_for(lambda: closed == [1000])


async def test_idle_timeout_closes_with_1001(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, idle_timeout=0.2, ping_interval=None)) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            await ws.wait_closed()
            assert ws.close_code == 1001
            assert ws.close_reason == "idle timeout"
        await wait_for(lambda: closed == [1001])
