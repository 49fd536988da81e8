"""Robyn's SSE and streaming semantics through roost.compat.robyn, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from roost.compat.robyn import Robyn, SSEMessage, SSEResponse, StreamingResponse
from tests.http_client import request


async def test_sse_messages_and_hand_formatted_strings_pass_through(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)

    @app.get("/events")
    def events() -> SSEResponse:
        def gen() -> Iterator[str]:
            for i in range(2):
                yield SSEMessage(f"Event {i}", id=str(i))
            yield "event: custom\ndata: by hand\n\n"

        return SSEResponse(gen())

    @app.get("/events/async")
    async def async_events() -> SSEResponse:
        async def gen() -> AsyncIterator[str]:
            await asyncio.sleep(0)
            yield SSEMessage('{"n": 1}', event="update")

        return SSEResponse(gen(), headers={"X-Stream": "1"})

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/events")
        async_reply = await request(server.port, "GET", "/events/async")
    assert reply.body == (
        b"id: 0\ndata: Event 0\n\nid: 1\ndata: Event 1\n\nevent: custom\ndata: by hand\n\n"
    )
    assert async_reply.body == b'event: update\ndata: {"n": 1}\n\n'
    for r in (reply, async_reply):
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert r.headers["pragma"] == "no-cache" and r.headers["expires"] == "0"
    assert async_reply.headers["x-stream"] == "1"


def test_sse_message_still_refuses_field_injection() -> None:
    with pytest.raises(ValueError, match="line break"):
        SSEMessage("x", event="a\ndata: forged")


async def test_streaming_response_defaults_and_media_type(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)

    @app.get("/stream")
    def stream() -> StreamingResponse:
        response = StreamingResponse(iter(["a", b"b"]))
        assert (response.media_type, response.status_code) == ("text/event-stream", 200)
        return response

    @app.get("/csv")
    def csv() -> StreamingResponse:
        return StreamingResponse(iter(["x,y\n", "1,2\n"]), 200, None, media_type="text/csv")

    async with serve(app) as server:
        stream_reply = await request(server.port, "GET", "/stream")
        csv_reply = await request(server.port, "GET", "/csv")
    assert stream_reply.body == b"ab"
    assert stream_reply.headers["content-type"] == "text/event-stream"
    assert csv_reply.body == b"x,y\n1,2\n" and csv_reply.headers["content-type"] == "text/csv"
    assert csv_reply.headers["cache-control"] == "no-cache, no-store, must-revalidate"
