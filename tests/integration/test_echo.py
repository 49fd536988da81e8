"""Echo over a real socket with the websockets client: text, binary, sizes, compression."""

from __future__ import annotations

import asyncio
import zlib

import websockets

from roost import Roost
from tests.raw_ws import client_frame, connect, read_frame


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


async def test_messages_compressed_with_bfinal_blocks(serve) -> None:  # type: ignore[no-untyped-def]
    """RFC 7692 section 7.2.3.4: a client may end each compressed message with a DEFLATE block
    that has BFINAL set (zlib's Z_FINISH); every message after the first is still read."""
    async with serve(echo_app()) as server:
        reader, writer, head = await connect(
            server.port, "/echo", {"Sec-WebSocket-Extensions": "permessage-deflate"}
        )
        assert b"permessage-deflate" in head
        inflater = zlib.decompressobj(-15)  # the server's messages share one window
        for text in [word * 60 for word in ["first", "second", "third"]]:  # over the threshold
            sender = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
            payload = sender.compress(text.encode()) + sender.flush(zlib.Z_FINISH)
            writer.write(client_frame(1, payload, rsv1=True))
            opcode, echoed = await read_frame(reader)
            assert opcode == 1
            assert inflater.decompress(echoed + b"\x00\x00\xff\xff").decode() == text
        writer.close()
