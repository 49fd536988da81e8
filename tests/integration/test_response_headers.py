"""A response header that could split the head (CR, LF, other controls, characters outside
Latin-1, a name that is not a token) or a status that is not a final one gets a 500 and a log
line: never a reset connection, never a header of the attacker's choosing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from roost import Request, Response, Roost, SSEResponse, StreamingResponse
from roost.protocol.errors import InvalidResponse
from roost.protocol.handshake import accept_response
from roost.protocol.http import encode_response
from tests.http_client import read_response, request_bytes
from tests.raw_ws import connect

BAD_HEADERS = {
    "crlf": ("x-a", "1\r\nset-cookie: injected=1"),
    "lf": ("x-a", "1\nset-cookie: injected=1"),
    "lone-cr": ("x-a", "1\rset-cookie: injected=1"),
    "nul": ("x-a", "a\x00b"),
    "del": ("x-a", "a\x7fb"),
    "non-latin-1": ("x-a", "caf\u00e9 \u20ac"),
    "name-space": ("x a", "1"),
    "name-colon": ("set-cookie: injected=1\r\nx", "1"),
    "name-empty": ("", "1"),
    "name-non-latin-1": ("x-\u20ac", "1"),
}


def make_app(bad: tuple[str, str], closed: list[str]) -> Roost:
    app = Roost(__file__)
    name, value = bad

    @app.get("/plain")
    def plain():  # type: ignore[no-untyped-def]
        return Response(200, [(name, value)], "body")

    @app.get("/stream")
    def stream():  # type: ignore[no-untyped-def]
        async def body() -> AsyncIterator[str]:
            try:
                yield "never sent"
            finally:
                closed.append("stream")

        gen = body()
        closed.append("created")
        return StreamingResponse(gen, headers=[(name, value)])

    @app.get("/events")
    def events():  # type: ignore[no-untyped-def]
        return SSEResponse(iter(["never sent"]), headers=[(name, value)])

    @app.get("/hooked")
    def hooked():  # type: ignore[no-untyped-def]
        return "fine until the hook"

    @app.after_request("/hooked")
    def hook(response: Response) -> Response:
        response.set_header(name, value)
        return response

    @app.get("/ok")
    def ok():  # type: ignore[no-untyped-def]
        return "still serving"

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        raise AssertionError("the handshake must not succeed")

    @ws.before_connect
    def reject(request: Request) -> Response:
        return Response(403, [(name, value)], "go away")

    return app


async def expect_500(port: int, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        reply = await read_response(reader)
    finally:
        writer.close()
    assert reply.status == 500, reply
    assert "set-cookie" not in reply.headers
    assert reply.body == b"Internal Server Error"
    assert any(
        r.exc_info is not None and isinstance(r.exc_info[1], InvalidResponse)
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    caplog.clear()


@pytest.mark.parametrize("bad", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
async def test_bad_headers_get_500(  # type: ignore[no-untyped-def]
    serve, bad: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    closed: list[str] = []
    async with serve(make_app(bad, closed)) as server:
        for path in ("/plain", "/stream", "/events", "/hooked"):
            await expect_500(server.port, request_bytes("GET", path), caplog)
        # The stream's generator was closed, never iterated.
        assert closed == ["created"]
        _, writer, head = await connect(server.port, "/ws")
        writer.close()
        assert head.startswith(b"HTTP/1.1 500"), head
        assert b"set-cookie" not in head.lower()
        # The server keeps serving, on keep-alive connections too.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes("GET", "/ok") + request_bytes("GET", "/ok"))
        for _ in range(2):
            assert (await read_response(reader)).body == b"still serving"
        writer.close()


@pytest.mark.parametrize(
    "target",
    ["/go/%0d%0aset-cookie:%20injected=1", "/go/%0aset-cookie:injected=1", "/go/%E2%82%AC"],
)
async def test_header_reflected_from_the_request(  # type: ignore[no-untyped-def]
    serve, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    app = Roost(__file__)

    @app.get("/go/:where")
    def go(request: Request):  # type: ignore[no-untyped-def]
        return Response(302, {"location": request.path}, "")

    async with serve(app) as server:
        await expect_500(server.port, request_bytes("GET", target), caplog)


@pytest.mark.parametrize("status", [99, 100, 101, 199, 600, 1000, -200])
async def test_status_that_is_not_final_gets_500(  # type: ignore[no-untyped-def]
    serve, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    app = Roost(__file__)

    @app.get("/plain")
    def plain():  # type: ignore[no-untyped-def]
        return Response(status, None, "body")

    @app.get("/stream")
    def stream():  # type: ignore[no-untyped-def]
        return StreamingResponse(iter(["body"]), status)

    async with serve(app) as server:
        await expect_500(server.port, request_bytes("GET", "/plain"), caplog)
        await expect_500(server.port, request_bytes("GET", "/stream"), caplog)


async def test_framing_headers_are_the_servers(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/lying")
    def lying():  # type: ignore[no-untyped-def]
        return Response(200, {"Content-Length": "2", "Transfer-Encoding": "chunked"}, "hello")

    @app.get("/next")
    def after():  # type: ignore[no-untyped-def]
        return "next"

    async with serve(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes("GET", "/lying") + request_bytes("GET", "/next"))
        first = await read_response(reader)  # fails on a header sent twice
        assert (first.headers["content-length"], first.body) == ("5", b"hello")
        assert "transfer-encoding" not in first.headers
        assert (await read_response(reader)).body == b"next"
        writer.close()


def test_encoders_check_every_header() -> None:
    from roost.protocol.http import header_line

    for name, value in BAD_HEADERS.values():
        with pytest.raises(InvalidResponse):
            header_line(name, value)
        with pytest.raises(InvalidResponse):
            encode_response(200, [(name, value)], b"")
        with pytest.raises(InvalidResponse):
            accept_response("dGhlIHNhbXBsZSBub25jZQ==", extra_headers=[(name, value)])
    with pytest.raises(InvalidResponse):
        header_line("x-count", 5)  # type: ignore[arg-type]
    assert (
        header_line("X-Ok_1!", "tab\there, obs-text \xe9")
        == b"X-Ok_1!: tab\there, obs-text \xe9\r\n"
    )


@pytest.mark.parametrize("name", ["a b", "chat\r\nx", "caf\u00e9", "", "a,b"])
def test_subprotocols_must_be_tokens(name: str) -> None:
    app = Roost(__file__)
    with pytest.raises(ValueError, match="not an RFC 9110 token"):

        @app.websocket("/ws", subprotocols=["chat", name])
        async def ws(websocket):  # type: ignore[no-untyped-def]
            pass
