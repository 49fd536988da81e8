"""SSE over a real socket: framing, keep-alive comments, and disconnects stopping generators."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading

import pytest

from roost import Roost, SSEMessage, SSEResponse
from tests.http_client import request
from tests.timing import seconds


async def open_stream(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(5))
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"transfer-encoding: chunked" in head.lower()
    return reader, writer


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await asyncio.wait_for(reader.readline(), seconds(5))).strip(), 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


def test_message_framing() -> None:
    assert SSEMessage("hi").encode() == b"data: hi\n\n"
    assert SSEMessage("a\nb\r\nc", event="tick", id=7, retry=1000).encode() == (
        b"event: tick\nid: 7\nretry: 1000\ndata: a\ndata: b\ndata: c\n\n"
    )
    assert SSEMessage({"n": 1}).encode() == b'data: {"n":1}\n\n'


def test_message_is_the_wire_text_and_keeps_its_fields() -> None:
    """As in Robyn, ``SSEMessage(...)`` is the formatted event itself (a str)."""
    message = SSEMessage("hi", event="tick", id="3", retry=10)
    assert isinstance(message, str)
    assert message == "event: tick\nid: 3\nretry: 10\ndata: hi\n\n"
    assert (message.data, message.event, message.id, message.retry) == ("hi", "tick", "3", 10)
    assert SSEMessage("") == "data: \n\n"
    assert "SSEMessage(data='hi'" in repr(message)


async def test_no_cache_headers_media_type_and_no_preamble(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/events")
    def events():  # type: ignore[no-untyped-def]
        response = SSEResponse(iter([SSEMessage("one")]), headers={"X-Extra": "1"})
        assert response.media_type == "text/event-stream"
        return response

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/events")
    assert reply.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert reply.headers["pragma"] == "no-cache" and reply.headers["expires"] == "0"
    assert reply.headers["x-accel-buffering"] == "no" and reply.headers["x-extra"] == "1"
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.body == b"data: one\n\n"  # the first bytes are the first event


async def test_raw_strings_pass_through_and_plain_strings_are_data(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/raw")
    def raw():  # type: ignore[no-untyped-def]
        return SSEResponse(iter(["event: a\ndata: 1\n\n", b"data: 2\n\n"]), raw_strings=True)

    @app.get("/wrapped")
    def wrapped():  # type: ignore[no-untyped-def]
        return SSEResponse(iter(["event: a\ndata: 1\n\n", b"two"]))

    async with serve(app) as server:
        raw_reply = await request(server.port, "GET", "/raw")
        wrapped_reply = await request(server.port, "GET", "/wrapped")
    assert raw_reply.body == b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert parse_event_stream(wrapped_reply.body) == [
        {"data": "event: a\ndata: 1\n\n"},
        {"data": "two"},
    ]


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
        assert await read_chunk(reader) == (b"event: greeting\nid: 1\ndata: first\ndata: line\n\n")
        assert await read_chunk(reader) == b'data: {"count":2}\n\n'
        assert await read_chunk(reader) == b": keep-alive\n\n"
        writer.close()
        await asyncio.wait_for(finished.wait(), seconds(5))


async def test_sync_generator_runs_off_the_loop(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    pinged = threading.Event()

    @app.get("/ticks")
    def ticks():  # type: ignore[no-untyped-def]
        def gen():  # type: ignore[no-untyped-def]
            yield SSEMessage("0")
            # Blocks until /ping is served: were the generator run on the event loop,
            # /ping could not be answered and this would time out.
            assert pinged.wait(5), "/ping was not served while the generator blocked"
            yield SSEMessage("1")
            yield SSEMessage("2")

        return SSEResponse(gen())

    @app.get("/ping")
    def ping():  # type: ignore[no-untyped-def]
        pinged.set()
        return "pong"

    async with serve(app) as server:
        reader, writer = await open_stream(server.port, "/ticks")
        assert await read_chunk(reader) == b"data: 0\n\n"
        reply = await request(server.port, "GET", "/ping")
        assert (reply.status, reply.body) == (200, b"pong")
        chunks = [await read_chunk(reader) for _ in range(3)]
        assert chunks == [b"data: 1\n\n", b"data: 2\n\n", b""]
        writer.close()


def parse_event_stream(stream: bytes) -> list[dict[str, str]]:
    """Events as a browser reads them (HTML, section 9.2.6): lines end at CRLF, LF or a lone
    CR; a blank line dispatches the event; the field name runs up to the first colon."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in re.split(r"\r\n|\r|\n", stream.decode("utf-8")):
        if not line:
            if fields:
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
    return events


def test_lone_cr_in_data_is_a_line_break_not_a_field() -> None:
    injected = "a\rid: 666\revent: admin\r\rdata: forged"
    encoded = SSEMessage(injected).encode()
    assert encoded == (
        b"data: a\ndata: id: 666\ndata: event: admin\ndata: \ndata: data: forged\n\n"
    )
    assert parse_event_stream(encoded) == [{"data": "a\nid: 666\nevent: admin\n\ndata: forged"}]
    assert SSEMessage("x\r\ny\rz\n").encode() == b"data: x\ndata: y\ndata: z\ndata: \n\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "tick\rdata: forged"},
        {"event": "tick\ndata: forged"},
        {"event": "tick\r\n"},
        {"id": "7\rretry: 1"},
        {"id": "7\n"},
        {"id": "7\x00"},
    ],
)
def test_event_and_id_cannot_break_lines(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="SSE"):
        SSEMessage("data", **kwargs)  # type: ignore[arg-type]


async def test_lone_cr_over_the_wire(serve, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/events")
    async def events():  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            yield "hello\rid: 666\revent: admin"
            yield {"text": "json\rescapes it"}
            yield SSEMessage("bad", event="tick\rdata: forged")

        return SSEResponse(gen())

    async with serve(app) as server:
        reader, writer = await open_stream(server.port, "/events")
        stream = b""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while chunk := await read_chunk(reader):
                stream += chunk
        writer.close()
    # The bad event name stopped the stream, with a log line, before any of it was sent.
    assert parse_event_stream(stream) == [
        {"data": "hello\nid: 666\nevent: admin"},
        {"data": '{"text":"json\\rescapes it"}'},
    ]
    assert any("SSE event name" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
