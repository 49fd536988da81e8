"""Limits enforced over real sockets: connections, origins, hooks, timeouts and buffers."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from roost import Request, Response, Roost, ServerOptions
from tests.raw_ws import (
    client_frame,
    connect,
    never_reading_client,
    read_close,
    read_frame,
    read_raw_frame,
)
from tests.timing import seconds


async def rejected_status(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    return info.value.response.status_code


def simple_app(**options: object) -> Roost:
    app = Roost(__file__, server_options=ServerOptions(**options))  # type: ignore[arg-type]

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    return app


async def test_max_connections_per_ip_and_total(serve) -> None:  # type: ignore[no-untyped-def]
    for options in ({"max_connections_per_ip": 2}, {"max_connections": 2}):
        async with serve(simple_app(**options)) as server:
            url = f"ws://127.0.0.1:{server.port}/ws"
            a = await websockets.connect(url)
            b = await websockets.connect(url)
            assert await rejected_status(url) == 503
            await a.close()
            for _ in range(100):  # the slot frees once the server saw the close
                try:
                    c = await websockets.connect(url)
                    break
                except InvalidStatus:
                    await asyncio.sleep(0.01)
            else:
                pytest.fail("a slot was not freed")
            await b.close()
            await c.close()


async def test_origins_before_connect_and_subprotocols(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.websocket("/guarded", origins=["https://ok.example"], subprotocols=["v2", "v1"])
    async def guarded(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text(f"proto={websocket.subprotocol}")

    @guarded.before_connect
    def check(request: Request) -> Response | None:
        if request.query_params.get("key") != "open-sesame":
            return Response(401, {"x-why": "key"}, "bad key")
        return None

    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/guarded"
        assert await rejected_status(url + "?key=open-sesame", origin="https://evil.example") == 403
        assert await rejected_status(url + "?key=open-sesame") == 403  # no Origin at all
        assert await rejected_status(url + "?key=nope", origin="https://ok.example") == 401
        good = url + "?key=open-sesame"
        async with websockets.connect(good, origin="https://ok.example", subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
            assert await ws.recv() == "proto=v1"
        async with websockets.connect(good, origin="https://ok.example") as ws:
            assert ws.subprotocol is None
            assert await ws.recv() == "proto=None"


async def test_handshake_timeout_answers_408(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(simple_app(handshake_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 408")
        writer.close()


async def test_slow_second_request_answers_408(serve) -> None:  # type: ignore[no-untyped-def]
    """keep_alive_timeout bounds the next request as handshake_timeout bounds the first."""
    async with serve(upload_app(keep_alive_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n1"), seconds(5))
        assert first.startswith(b"HTTP/1.1 200")
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 408")
        writer.close()


def upload_app(**options: object) -> Roost:
    app = simple_app(**options)

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response(200, {"content-type": "text/plain"}, str(len(request.body)))

    return app


async def test_body_that_never_comes_answers_408(serve) -> None:  # type: ignore[no-untyped-def]
    """The head arrived whole but the body did not: the request is in progress, so the
    timeout answers 408 rather than dropping the connection without a word."""
    async with serve(upload_app(handshake_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 408")
        writer.close()


async def test_body_sent_after_its_head_is_not_header_bytes(serve) -> None:  # type: ignore[no-untyped-def]
    """Clients often write the head, then the body: a body larger than the header limit,
    read in several pieces, is accepted (not answered 431)."""
    async with serve(upload_app()) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = b"x" * 1_000_000
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # Wait until the server parsed the head alone, so that the body comes in later reads.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not any(conn.receiving for conn in server.connections):
            assert loop.time() < deadline, "the server never reported the request in progress"
            await asyncio.sleep(0.01)
        writer.write(body)
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
        assert reply.endswith(b"\r\n\r\n1000000")
        writer.close()


async def test_close_timeout_drops_a_silent_peer(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.websocket("/bye", close_timeout=0.2, ping_interval=None)
    async def bye(websocket):  # type: ignore[no-untyped-def]
        await websocket.close(4000, "bye")

    async with serve(app) as server:
        reader, writer, _ = await connect(server.port, "/bye")
        assert await read_close(reader) == 4000
        # We never answer the close frame: the server drops the TCP connection itself.
        assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
        writer.close()


async def test_inbound_queue_bound_pauses_reading(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    gate = asyncio.Event()

    @app.websocket("/slow", max_queue=4, ping_interval=None)
    async def slow(websocket):  # type: ignore[no-untyped-def]
        await gate.wait()
        for i in range(100):
            assert await websocket.receive_text() == f"m{i}"
        await websocket.send_text("all 100 received in order")

    async with serve(app) as server:
        reader, writer, _ = await connect(server.port, "/slow")
        for i in range(100):
            writer.write(client_frame(1, f"m{i}".encode()))
        await writer.drain()
        (channel,) = server.channels
        for _ in range(200):
            if channel.reading_paused:
                break
            await asyncio.sleep(0.01)
        assert channel.reading_paused
        gate.set()
        assert await read_frame(reader) == (1, b"all 100 received in order")
        assert not channel.reading_paused
        writer.close()


@pytest.mark.parametrize("policy", ["close", "drop"])
async def test_slow_consumer_never_grows_the_buffer(serve, policy: str) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    limit = 256 * 1024
    closed: list[int | None] = []

    @app.websocket(
        "/feed",
        max_outbound_buffer=limit,
        slow_consumer=policy,
        ping_interval=None,
        close_timeout=0.5,
        compression=False,
    )
    async def feed(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive()

    @feed.on_close
    def gone(websocket):  # type: ignore[no-untyped-def]
        closed.append(websocket.close_code)

    async with serve(app) as server:
        sock = await never_reading_client(server.port, "/feed")
        for _ in range(100):
            if server.channels:
                break
            await asyncio.sleep(0.01)
        (channel,) = server.channels
        chunk = "x" * 65536
        peak = 0
        for _ in range(1600):  # 100 MiB offered
            await app.broadcast("/feed", chunk)
            peak = max(peak, channel.buffered)
            await asyncio.sleep(0)
        assert peak <= limit + 2 * 65536
        if policy == "close":
            for _ in range(300):
                if closed:
                    break
                await asyncio.sleep(0.01)
            assert closed == [1008]
        else:
            assert channel.dropped > 1000
            assert channel.open
        sock.close()


@pytest.mark.parametrize("option", ["max_connections_per_ip", "max_connections"])
async def test_a_burst_cannot_pass_a_limit_while_before_connect_awaits(serve, option) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__, server_options=ServerOptions(**{option: 2}))  # type: ignore[arg-type]
    gate = asyncio.Event()
    waiting: list[str] = []

    @app.websocket("/ws", ping_interval=None)
    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("in")
        await websocket.receive()

    @ws.before_connect
    async def slow_auth(request: Request) -> None:
        waiting.append(request.path)
        await gate.wait()  # e.g. a token check against a remote service

    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"

        async def attempt() -> object:
            try:
                return await websockets.connect(url)
            except InvalidStatus as exc:
                return exc.response.status_code

        tasks = [asyncio.create_task(attempt()) for _ in range(6)]
        for _ in range(500):  # two handshakes reach before_connect, four are refused
            if len(waiting) == 2 and sum(t.done() for t in tasks) == 4:
                break
            await asyncio.sleep(0.01)
        assert [t.result() for t in tasks if t.done()] == [503] * 4
        gate.set()
        results = await asyncio.gather(*tasks)
        opened = [r for r in results if not isinstance(r, int)]
        assert len(opened) == 2 and len(waiting) == 2
        for client in opened:
            assert await client.recv() == "in"  # type: ignore[attr-defined]
            await client.close()  # type: ignore[attr-defined]


async def test_max_connections_bounds_idle_http_connections(serve) -> None:  # type: ignore[no-untyped-def]
    app = simple_app(max_connections=3, handshake_timeout=30)

    @app.get("/ok")
    def ok():  # type: ignore[no-untyped-def]
        return "ok"

    async with serve(app) as server:
        # A slowloris: connections that send part of a request, then nothing.
        idle = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            idle.append((reader, writer))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 503")
        assert b"retry-after: 1" in reply.lower()
        assert reply.endswith(b"too many connections")
        writer.close()
        # WebSocket handshakes are refused the same way.
        assert await rejected_status(f"ws://127.0.0.1:{server.port}/ws") == 503
        # Once a slot frees, requests are served again.
        idle[0][1].close()
        for _ in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = await asyncio.wait_for(reader.read(), seconds(5))
            writer.close()
            if reply.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("no slot was freed")
        for _, w in idle[1:]:
            w.close()


async def test_compressed_messages_wait_unparsed_behind_max_queue(serve) -> None:  # type: ignore[no-untyped-def]
    """Compressed messages that inflate to 256 KiB each, sent in one burst: roost parses (and
    inflates) no more than ``max_queue`` of them; the rest wait as wire bytes, and every one
    arrives, in order, once the handler reads."""
    import tracemalloc
    import zlib

    app = Roost(__file__)
    gate = asyncio.Event()
    size, count = 256 * 1024, 120

    @app.websocket("/slow", max_queue=2, ping_interval=None)
    async def slow(websocket):  # type: ignore[no-untyped-def]
        await gate.wait()
        for i in range(count):
            message = await websocket.receive_bytes()
            assert message == bytes([i % 256]) * size, i
        await websocket.send_text(f"all {count} received in order")

    def deflated(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    async with serve(app) as server:
        extensions = {"Sec-WebSocket-Extensions": "permessage-deflate"}
        reader, writer, head = await connect(server.port, "/slow", extensions)
        assert b"permessage-deflate" in head
        burst = b"".join(
            client_frame(2, deflated(bytes([i % 256]) * size), rsv1=True) for i in range(count)
        )
        assert len(burst) < size  # the whole burst is smaller than one inflated message
        tracemalloc.start()
        try:
            writer.write(burst)
            await writer.drain()
            (channel,) = server.channels
            for _ in range(500):
                if channel.reading_paused:
                    break
                await asyncio.sleep(0.01)
            assert channel.reading_paused
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert held < 8 * size, f"{held} bytes held for {len(burst)} bytes received"
        gate.set()
        # A reply under the compression threshold goes out uncompressed (RSV1 unset).
        assert await read_raw_frame(reader) == (0x81, f"all {count} received in order".encode())
        writer.close()
