"""Bad input gets a clear answer (an HTTP status or a close code) and the server keeps serving."""

from __future__ import annotations

import asyncio
import zlib

import pytest
import websockets

from roost import Roost
from tests.raw_ws import client_frame, connect, raw_request, read_close, read_frame
from tests.timing import seconds


def make_app(closed: list[str] | None = None) -> Roost:
    app = Roost(__file__)

    @app.websocket("/echo", max_message_size=1024, ping_interval=None)
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    @echo.on_close
    def gone(websocket):  # type: ignore[no-untyped-def]
        if closed is not None:
            closed.append(websocket.id)

    return app


async def still_serves(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo") as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"


KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"400"),
        (
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
            b"400",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + KEY.encode()
            + b"Sec-WebSocket-Version: 8\r\n\r\n",
            b"426",
        ),
        (b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
        (
            b"GET /echo HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
            b"431",
        ),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", b"413"),
        (
            b"GET /nowhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + KEY.encode()
            + b"Sec-WebSocket-Version: 13\r\n\r\n",
            b"404",
        ),
    ],
    ids=["garbage", "no-key", "version-8", "huge-header", "many-headers", "huge-body", "no-route"],
)
async def test_bad_requests_get_http_errors(serve, request_bytes: bytes, status: bytes) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reply = await raw_request(server.port, request_bytes)
        assert reply.split(b" ")[1] == status, reply[:200]
        if status == b"426":
            assert b"sec-websocket-version: 13" in reply.lower()
        await still_serves(server.port)


async def expect_close_code(port: int, data: bytes, code: int) -> None:
    reader, writer, head = await connect(port, "/echo")
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(data)
    assert await read_close(reader) == code
    assert await asyncio.wait_for(reader.read(), seconds(5)) == b""  # the server closed the TCP too
    writer.close()


async def test_protocol_violations_get_close_codes(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        port = server.port
        await expect_close_code(port, client_frame(1, b"hi", masked=False), 1002)
        await expect_close_code(port, client_frame(1, b"\xff\xfe"), 1007)
        await expect_close_code(port, client_frame(2, b"x" * 1025), 1009)
        await expect_close_code(port, client_frame(9, b"x" * 126), 1002)  # control too long
        await expect_close_code(port, client_frame(3, b""), 1002)  # reserved opcode
        await expect_close_code(port, client_frame(0, b"x"), 1002)  # nothing to continue
        await expect_close_code(port, client_frame(8, b"\x03\xe8\xff"), 1007)  # bad reason
        await expect_close_code(port, client_frame(8, b"\x03\xed"), 1002)  # code 1005
        await still_serves(port)


async def test_invalid_utf8_fails_fast_mid_message(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reader, writer, _ = await connect(server.port, "/echo")
        writer.write(client_frame(1, "κό".encode(), fin=False))
        writer.write(client_frame(0, b"\xed\xa0\x80", fin=False))  # a surrogate: invalid
        # No final fragment is ever sent: the server must not wait for it.
        assert await read_close(reader) == 1007
        writer.close()


async def test_oversized_message_rejected_from_its_header(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reader, writer, _ = await connect(server.port, "/echo")
        frame = client_frame(2, b"x" * 100_000)
        writer.write(frame[:20])  # only the header announcing 100 kB
        assert await read_close(reader) == 1009
        writer.close()


async def test_compression_bomb_is_stopped(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reader, writer, head = await connect(
            server.port, "/echo", {"Sec-WebSocket-Extensions": "permessage-deflate"}
        )
        assert b"permessage-deflate" in head
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = bomb.compress(b"\x00" * 50_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
        writer.write(client_frame(2, payload[:-4], rsv1=True))
        assert await read_close(reader) == 1009
        writer.close()


async def test_vanishing_client_is_cleaned_up(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[str] = []
    app = make_app(closed)
    async with serve(app) as server:
        other = await websockets.connect(f"ws://127.0.0.1:{server.port}/echo")
        reader, writer, _ = await connect(server.port, "/echo")
        writer.write(client_frame(1, b"hello"))
        assert await read_frame(reader) == (1, b"hello")
        assert len(await app.connections("/echo")) == 2
        writer.transport.abort()  # no close frame, just gone
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.01)
        assert len(closed) == 1
        assert len(await app.connections("/echo")) == 1
        await other.send("unaffected")
        assert await other.recv() == "unaffected"
        await other.close()
