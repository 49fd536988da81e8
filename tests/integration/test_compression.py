"""permessage-deflate over real sockets: what roost answers to the offers of Chromium and of
the websockets client, zlib contexts created only when a compressed message needs them and
dropped when not needed, broadcasts compressed once, the size threshold, and every setting's
validation."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import websockets

from roost import Roost, WebSocketOptions
from roost.server.websocket import WebSocketChannel
from tests.raw_ws import client_frame, connect, read_frame, read_raw_frame
from tests.timing import eventually

TAIL = b"\x00\x00\xff\xff"
#: What Chromium sends (and the websockets client too, by default).
CHROMIUM_OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
DEFAULT_ANSWER = (
    b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
    b"client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12\r\n"
)


def echo_app(**options: Any) -> Roost:
    app = Roost(__file__)

    @app.websocket("/echo", **options)
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    @app.websocket("/room", **options)
    async def room(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.broadcast(await websocket.receive())

    return app


def deflated(data: bytes, bits: int = 12) -> bytes:
    """A message compressed on its own, as a client without context takeover sends it."""
    sender = zlib.compressobj(6, zlib.DEFLATED, -bits)
    return (sender.compress(data) + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]


def only_channel(server: Any) -> WebSocketChannel:
    (channel,) = server.channels
    return channel  # type: ignore[no-any-return]


async def test_chromiums_offer_gets_no_context_takeover_and_small_windows(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app()) as server:
        reader, writer, head = await connect(server.port, "/echo", CHROMIUM_OFFER)
        assert DEFAULT_ANSWER in head
        long = "a compressible sentence, " * 20
        for _ in range(2):  # each message stands alone both ways
            writer.write(client_frame(1, deflated(long.encode()), rsv1=True))
            b0, payload = await read_raw_frame(reader)
            assert b0 == 0xC1  # FIN, RSV1, text
            assert zlib.decompressobj(-12).decompress(payload + TAIL).decode() == long
        writer.write(client_frame(1, deflated(b"short"), rsv1=True))
        assert await read_raw_frame(reader) == (0x81, b"short")  # under 256 bytes: as it is
        writer.close()


async def test_websockets_client_round_trip(serve) -> None:  # type: ignore[no-untyped-def]
    async with (
        serve(echo_app()) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws,
    ):
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            DEFAULT_ANSWER.split(b": ", 1)[1].strip().decode()
        )
        for message in ["", "hé", "x" * 255, "y" * 256, "z" * 70_000, b"\x00" * 300_000]:
            await ws.send(message)
            assert await ws.recv() == message


async def test_contexts_are_created_lazily_and_dropped(serve) -> None:  # type: ignore[no-untyped-def]
    """With the defaults a connection holds no zlib object, idle or between messages."""
    async with serve(echo_app()) as server:
        reader, writer, _ = await connect(server.port, "/echo", CHROMIUM_OFFER)
        writer.write(client_frame(1, b"uncompressed " * 30))
        await read_frame(reader)
        channel = only_channel(server)
        deflate = channel.conn.deflate
        assert deflate is not None and deflate.contexts == 0
        shared = deflate.shared_deflater
        assert shared is not None and shared.messages == 1  # the echo, over the threshold
        # A compressed message split over two frames: the decompressor lives until its end.
        payload = deflated(b"compressed " * 30)
        writer.write(client_frame(1, payload[:4], rsv1=True, fin=False))
        await eventually(lambda: deflate.contexts == 1)
        writer.write(client_frame(0, payload[4:]))
        b0, echoed = await read_raw_frame(reader)
        assert b0 == 0xC1
        assert zlib.decompressobj(-12).decompress(echoed + TAIL) == b"compressed " * 30
        assert deflate.contexts == 0
        writer.close()


async def test_contexts_with_context_takeover_are_kept_and_freed_at_close(serve) -> None:  # type: ignore[no-untyped-def]
    app = echo_app(
        server_no_context_takeover=False,
        client_no_context_takeover=False,
        compression_idle_timeout=None,
    )
    async with serve(app) as server:
        reader, writer, head = await connect(server.port, "/echo", CHROMIUM_OFFER)
        assert b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n" in (
            head
        )
        await eventually(lambda: len(server.channels) == 1)
        deflate = only_channel(server).conn.deflate
        assert deflate is not None and deflate.contexts == 0 and deflate.shared_deflater is None
        sender = zlib.compressobj(6, zlib.DEFLATED, -12)
        inflater = zlib.decompressobj(-12)
        for _ in range(2):  # the second message refers back to the first, both ways
            data = sender.compress(b"takeover " * 40) + sender.flush(zlib.Z_SYNC_FLUSH)
            writer.write(client_frame(1, data[:-4], rsv1=True))
            b0, payload = await read_raw_frame(reader)
            assert b0 == 0xC1
            assert inflater.decompress(payload + TAIL) == b"takeover " * 40
        assert deflate.contexts == 2
        channel = only_channel(server)
        writer.write(client_frame(8, b"\x03\xe8"))
        await read_frame(reader)
        await eventually(lambda: channel.conn.deflate is None)
        writer.close()


async def test_idle_compressor_is_released(serve) -> None:  # type: ignore[no-untyped-def]
    app = echo_app(server_no_context_takeover=False, compression_idle_timeout=0.05)
    async with (
        serve(app) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws,
    ):
        await ws.send("idle " * 100)
        assert await ws.recv() == "idle " * 100
        deflate = only_channel(server).conn.deflate
        assert deflate is not None and deflate.contexts == 1  # the compressor
        await eventually(lambda: deflate.contexts == 0)
        # The client kept its window: the next message, from a new compressor, decodes.
        await ws.send("again " * 100)
        assert await ws.recv() == "again " * 100
        assert deflate.contexts == 1


async def test_broadcast_is_compressed_once(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app()) as server:
        clients = [await connect(server.port, "/room", CHROMIUM_OFFER) for _ in range(4)]
        plain = await connect(server.port, "/room")
        await eventually(lambda: len(server.channels) == 5)
        message = ("news for everyone " * 30).encode()
        clients[0][1].write(client_frame(1, message))
        frames = [await read_raw_frame(reader) for reader, _, _ in clients]
        assert all(frame == frames[0] for frame in frames)
        assert frames[0][0] == 0xC1
        assert zlib.decompressobj(-12).decompress(frames[0][1] + TAIL) == message
        assert await read_raw_frame(plain[0]) == (0x81, message)
        deflaters = {id(c.conn.deflate.shared_deflater) for c in server.channels if c.conn.deflate}
        assert len(deflaters) == 1
        (deflater,) = {c.conn.deflate.shared_deflater for c in server.channels if c.conn.deflate}
        assert deflater is not None and deflater.messages == 1
        for _, writer, _ in [*clients, plain]:
            writer.close()


@pytest.mark.parametrize("threshold", [0, 100])
async def test_threshold(serve, threshold: int) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app(compression_threshold=threshold)) as server:
        reader, writer, _ = await connect(server.port, "/echo", CHROMIUM_OFFER)
        for size in (1, 99, 100, 101):
            writer.write(client_frame(2, b"\x05" * size))
            b0, payload = await read_raw_frame(reader)
            compressed = size >= threshold
            assert b0 == (0xC2 if compressed else 0x82)
            inflated = zlib.decompressobj(-12).decompress(payload + TAIL) if compressed else payload
            assert inflated == b"\x05" * size
        writer.close()


async def test_settings_shape_the_answer(serve) -> None:  # type: ignore[no-untyped-def]
    app = echo_app(
        server_no_context_takeover=False,
        client_no_context_takeover=False,
        server_max_window_bits=10,
        client_max_window_bits=9,
        compression_level=1,
        compression_mem_level=9,
    )
    async with serve(app) as server:
        _, writer, head = await connect(server.port, "/echo", CHROMIUM_OFFER)
        assert (
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; "
            b"client_max_window_bits=9\r\n"
        ) in head
        writer.close()
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
            for message in ["w" * 1000, "v" * 5000]:
                await ws.send(message)
                assert await ws.recv() == message


async def test_compression_off(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(echo_app(compression=False)) as server:
        _, writer, head = await connect(server.port, "/echo", CHROMIUM_OFFER)
        assert b"Sec-WebSocket-Extensions" not in head
        writer.close()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("compression", "yes", "compression must be True or False"),
        ("compression_threshold", -1, "compression_threshold must be an integer of at least 0"),
        ("server_no_context_takeover", "no", "server_no_context_takeover must be True or"),
        ("client_no_context_takeover", 0, "client_no_context_takeover must be True or False"),
        ("server_max_window_bits", 8, "server_max_window_bits must be an integer from 9 to 15"),
        ("client_max_window_bits", 16, "client_max_window_bits must be an integer from 9 to 15"),
        ("compression_level", 0, "compression_level must be an integer from 1 to 9"),
        ("compression_mem_level", 10, "compression_mem_level must be an integer from 1 to 9"),
        ("compression_idle_timeout", 0, "compression_idle_timeout must be a number > 0 or None"),
        ("compression_idle_timeout", "1", "compression_idle_timeout must be a number > 0 or"),
        ("compression_idle_timeout", True, "compression_idle_timeout must be a number > 0 or"),
    ],
)
def test_every_setting_is_validated(option: str, value: object, message: str) -> None:
    message = f"WebSocketOptions.{message}"
    with pytest.raises(ValueError, match=message):
        WebSocketOptions(**{option: value})  # type: ignore[arg-type]
    app = Roost(__file__)
    with pytest.raises(ValueError, match=message):
        app.websocket("/x", **{option: value})
