"""Echo over a real socket with the websockets client: text, binary, sizes, compression."""

from __future__ import annotations

import asyncio

import websockets

from roost import Roost


def echo_app() -> Roost:
    app = Roost(__file__)

    @app.websocket("/echo")
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    return app


async def test_text_and_binary_round_trip(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app()) as server:
        url = f"ws://127.0.0.1:{server.port}/echo"
        for compression in ("deflate", None):
            async with websockets.connect(url, compression=compression) as ws:
                for message in ["", "héllo ✓", "x" * 125, "y" * 126, "z" * 70_000]:
                    await ws.send(message)
                    assert await ws.recv() == message
                for data in [b"", b"\x00\xff" * 10, bytes(range(256)) * 300]:
                    await ws.send(data)
                    assert await ws.recv() == data
            assert ws.close_code == 1000


async def test_two_hundred_clients_echo_twenty_messages(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app()) as server:
        url = f"ws://127.0.0.1:{server.port}/echo"

        async def client(n: int) -> int:
            async with websockets.connect(url, compression=None) as ws:
                for i in range(20):
                    await ws.send(f"{n}:{i}")
                    assert await ws.recv() == f"{n}:{i}"
            return n

        done = await asyncio.gather(*(client(n) for n in range(200)))
        assert sorted(done) == list(range(200))
