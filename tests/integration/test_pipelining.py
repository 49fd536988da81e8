"""Pipelined requests on one connection: answered in order, and none runs once the connection
is being dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from roost import Request, Roost, StreamingResponse
from tests.http_client import read_response, request_bytes
from tests.timing import eventually, seconds


def make_app(ran: list[str]) -> Roost:
    app = Roost(__file__)

    @app.get("/broken-stream")
    def broken_stream():  # type: ignore[no-untyped-def]
        async def body() -> AsyncIterator[str]:
            yield "half"
            raise RuntimeError("the body failed midway")

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/record/{name}")
    def record(request: Request, name: str) -> str:
        ran.append(name)
        return name

    return app


async def test_pipelined_requests_are_answered_in_order(serve) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    async with serve(make_app(ran)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"".join(request_bytes("GET", f"/record/{n}") for n in ("a", "b", "c")))
        bodies = [(await read_response(reader)).body for _ in range(3)]
        assert bodies == [b"a", b"b", b"c"]
        assert ran == ["a", "b", "c"]
        writer.close()


async def test_no_request_runs_after_a_response_failed_midway(serve) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    async with serve(make_app(ran)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes("GET", "/broken-stream") + request_bytes("GET", "/record/after"))
        try:
            received = await asyncio.wait_for(reader.read(), seconds(5))
        except ConnectionResetError:
            received = b""
        assert b"200 OK" in received or received == b""
        assert received.count(b"HTTP/1.1 ") <= 1  # the head of the broken one, if read in time
        await eventually(
            lambda: not server.connections and not server.tasks, what="connection let go"
        )
        # A request behind a response that was cut must not run: its client sees the
        # connection dropped and may send it again.
        assert ran == []
        writer.close()
