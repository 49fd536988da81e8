"""SSE over a real socket: framing, keep-alive comments, and disconnects stopping generators."""

from __future__ import annotations

import asyncio
import time

from roost import Roost, SSEMessage, SSEResponse


async def open_stream(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"transfer-encoding: chunked" in head.lower()
    return reader, writer


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await asyncio.wait_for(reader.readline(), 5)).strip(), 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


def test_message_framing() -> None:
    assert SSEMessage("hi").encode() == b"data: hi\n\n"
    assert SSEMessage("a\nb\r\nc", event="tick", id=7, retry=1000).encode() == (
        b"event: tick\nid: 7\nretry: 1000\ndata: a\ndata: b\ndata: c\n\n"
    )
    assert SSEMessage({"n": 1}).encode() == b'data: {"n":1}\n\n'


async def test_async_generator_events_keepalive_and_disconnect(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    finished = asyncio.Event()
    release = asyncio.Event()

    @app.get("/events")
    async def events():  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            try:
                yield SSEMessage("first\nline", event="greeting", id=1)
                yield {"count": 2}
                await release.wait()  # idle: keep-alive comments flow meanwhile
                yield "never read"
            finally:
                finished.set()

        return SSEResponse(gen(), keep_alive=0.05)

    async with serve(app) as server:
        reader, writer = await open_stream(server.port, "/events")
        assert await read_chunk(reader) == b": stream opened\n\n"
        assert await read_chunk(reader) == (b"event: greeting\nid: 1\ndata: first\ndata: line\n\n")
        assert await read_chunk(reader) == b'data: {"count":2}\n\n'
        assert await read_chunk(reader) == b": keep-alive\n\n"
        writer.close()
        await asyncio.wait_for(finished.wait(), 5)


async def test_sync_generator_runs_off_the_loop(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/ticks")
    def ticks():  # type: ignore[no-untyped-def]
        def gen():  # type: ignore[no-untyped-def]
            for i in range(3):
                time.sleep(0.01)  # blocking, yet the server keeps serving
                yield SSEMessage(str(i))

        return SSEResponse(gen())

    @app.get("/ping")
    def ping():  # type: ignore[no-untyped-def]
        return "pong"

    async with serve(app) as server:
        reader, writer = await open_stream(server.port, "/ticks")
        chunks = [await read_chunk(reader) for _ in range(5)]
        assert chunks[1:] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
        writer.close()
