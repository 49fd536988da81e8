"""Only ``Upgrade: websocket`` is a handshake. Any other upgrade offer (``h2c``, which
``curl --http2`` sends) is ignored, as RFC 9110 section 7.8 allows: the request is served as
plain HTTP/1.1, with its body, on a connection that stays open for the next requests."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from roost import Request, Roost
from tests.http_client import read_response
from tests.timing import seconds

# What curl 8 sends for `curl --http2 http://127.0.0.1:PORT/health`.
H2C = (
    "Connection: Upgrade, HTTP2-Settings\r\n"
    "Upgrade: h2c\r\n"
    "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
)


def make_app() -> Roost:
    app = Roost(__file__)

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return {"ok": True}

    @app.post("/echo")
    def echo(request: Request):  # type: ignore[no-untyped-def]
        return {"body": request.body.decode(), "upgrade": request.headers.get("upgrade")}

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text(await websocket.receive_text())

    return app


async def exchange(port: int, data: bytes, methods: list[str]) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        replies = []
        for method in methods:
            reply = await read_response(reader, method)
            replies.append((reply.status, reply.body))
            assert reply.headers.get("connection") != "close"
        return replies
    finally:
        writer.close()


async def test_curl_http2_upgrade_is_served_as_http1(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        data = (
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.5.0\r\n"
            "Accept: */*\r\n" + H2C + "\r\n"
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        ).encode()
        assert await exchange(server.port, data, ["GET", "GET"]) == [
            (200, b'{"ok":true}'),
            (200, b'{"ok":true}'),
        ]


@pytest.mark.parametrize(
    "body",
    [
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_post_with_body_and_upgrade_header(serve, body: bytes) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + H2C.encode()
        data = head + body + b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        replies = await exchange(server.port, data, ["POST", "GET"])
        assert replies == [
            (200, b'{"body":"hello","upgrade":"h2c"}'),
            (200, b'{"ok":true}'),
        ]
        # Sent in pieces, the body still arrives whole.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for piece in (head, body[:-3], body[-3:]):
            writer.write(piece)
            await writer.drain()
        reply = await read_response(reader, "POST")
        assert reply.body == b'{"body":"hello","upgrade":"h2c"}'
        writer.close()


async def test_other_upgrades_on_a_websocket_path(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        # No HTTP route at /ws: plain HTTP's 404, and the connection goes on.
        data = (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n" + H2C + "\r\n"
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        ).encode()
        replies = await exchange(server.port, data, ["GET", "GET"])
        assert [status for status, _ in replies] == [404, 200]
        # A WebSocket handshake that also offers h2c is still a handshake.
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws", additional_headers={"X-Other": "1"}
        ) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(5))
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.close()


async def test_connect_is_answered_then_closed(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
            b"\x16\x03\x01 tunnel bytes, not HTTP"
        )
        reply = await read_response(reader)
        assert reply.status in (404, 405)
        assert reply.headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
        writer.close()
