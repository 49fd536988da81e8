"""Server: connection accounting, the per-turn flush of corked channels, tracked tasks, graceful
shutdown on in-memory connections, and one real listening socket."""

from __future__ import annotations

import asyncio

import pytest

from roost.protocol.http import HttpRequest
from roost.server.http import HttpConnection
from roost.server.options import WebSocketOptions
from tests.protocol.wire import close_payload, wire
from tests.server.conftest import MakeServer
from tests.server.fakes import (
    SWITCHING,
    UPGRADE_REQUEST,
    FakeTransport,
    close_frame,
    connect,
    eventually,
    server_frames,
)
from tests.timing import seconds

#: A test that breaks fails in seconds instead of hanging on an event that never comes.
pytestmark = pytest.mark.timeout(10)

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


# -- accounting -------------------------------------------------------------------------------


async def test_admit_and_release_count_per_server_and_per_ip(make_server: MakeServer) -> None:
    server = make_server(max_connections=3, max_connections_per_ip=2)
    assert server.admit("10.0.0.1") is None
    assert server.admit("10.0.0.1") is None
    assert server.admit("10.0.0.1") == "too many connections from this address"
    assert server.admit("10.0.0.2") is None
    assert server.admit("10.0.0.3") == "too many connections"
    assert (server.admitted, server.connections_from("10.0.0.1")) == (3, 2)
    server.release("10.0.0.1")
    assert (server.admitted, server.connections_from("10.0.0.1")) == (2, 1)
    assert server.admit("10.0.0.3") is None
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        server.release(ip)
    assert server.admitted == 0
    assert [server.connections_from(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [0] * 3


async def test_connections_are_counted_from_accept_to_loss(make_server: MakeServer) -> None:
    server = make_server()
    transports = [FakeTransport(("10.0.0.1", port)) for port in range(3)]
    conns = [connect(server, t) for t in transports]
    assert server.connections == set(conns)
    assert (server.admitted, server.connections_from("10.0.0.1")) == (3, 3)
    transports[0].lose()
    transports[1].feed(GET)  # answered, then closed by the client
    await transports[1].until(lambda: bool(transports[1].writes))
    transports[1].lose()
    assert server.connections == {conns[2]}
    assert (server.admitted, server.connections_from("10.0.0.1")) == (1, 1)


async def test_track_keeps_a_task_until_it_ends(make_server: MakeServer) -> None:
    server = make_server()
    finish = asyncio.Event()
    task = asyncio.ensure_future(finish.wait())
    server.track(task)  # type: ignore[arg-type]
    assert server.tasks == {task}
    finish.set()
    await task
    await eventually(lambda: not server.tasks)


# -- corking ----------------------------------------------------------------------------------


async def test_corked_channels_are_flushed_together_once_per_turn(make_server: MakeServer) -> None:
    server = make_server()
    transports = [FakeTransport(("10.0.0.1", port)) for port in range(3)]
    channels = []
    for t in transports:
        conn = connect(server, t)
        channels.append(conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None))
        t.writes.clear()
    for message in ("a", "b"):  # a broadcast of two messages
        for channel in channels[:2]:
            assert channel.send_nowait(message)
    assert [t.writes for t in transports] == [[], [], []]
    await transports[1].until(lambda: bool(transports[1].writes))
    assert transports[0].writes == [b"\x81\x01a\x81\x01b"]  # one write per connection
    assert transports[1].writes == [b"\x81\x01a\x81\x01b"]
    assert transports[2].writes == []
    channels[2].send_nowait("c")  # the next turn: a new flush
    await transports[2].until(lambda: bool(transports[2].writes))
    assert transports[2].writes == [b"\x81\x01c"]
    assert len(transports[0].writes) == 1


# -- shutdown ---------------------------------------------------------------------------------


async def test_shutdown_closes_idle_connections_and_lets_requests_finish(
    make_server: MakeServer,
) -> None:
    answer = asyncio.Event()
    handling = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        if request.path == "/slow":
            handling.set()
            await answer.wait()
        conn.send_response(200, [("content-type", "text/plain")], b"done")

    server = make_server(handler)
    idle = FakeTransport(("10.0.0.1", 1))
    connect(server, idle)
    kept = FakeTransport(("10.0.0.1", 2))  # answered once, now waiting for its next request
    connect(server, kept)
    kept.feed(GET)
    await kept.until(lambda: bool(kept.writes))
    busy = FakeTransport(("10.0.0.1", 3))
    connect(server, busy)
    busy.feed(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await handling.wait()
    halfway = FakeTransport(("10.0.0.1", 4))  # part of a request has arrived
    connect(server, halfway)
    halfway.feed(GET[:10])

    shutdown = asyncio.ensure_future(server.shutdown(timeout=seconds(5)))
    await server.wait_closing()
    assert server.closing
    await idle.until_lost()
    await eventually(lambda: kept.lost)
    assert idle.data == b"" and not idle.aborted
    assert not busy.closing and not halfway.closing  # being answered, being received
    halfway.feed(GET[10:])  # it was arriving when shutdown began: it is answered
    await halfway.until_lost()
    assert halfway.data == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n"
        b"connection: close\r\n\r\ndone"
    )
    late = FakeTransport(("10.0.0.1", 5))  # a request begun after the shutdown is refused
    connect(server, late)
    late.feed(GET)
    await late.until_lost()
    assert late.data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert not shutdown.done()  # the handler still runs
    answer.set()
    await busy.until_lost()
    assert busy.data == (  # its answer goes out, with Connection: close
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n"
        b"connection: close\r\n\r\ndone"
    )
    await shutdown
    assert not busy.aborted
    assert server.connections == set() and server.tasks == set()
    await server.wait_closed()


async def test_shutdown_closes_websockets_with_its_code(make_server: MakeServer) -> None:
    ended = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> object:
        channel = conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)

        async def session() -> None:
            try:
                while True:
                    await channel.recv()
            except Exception:
                await channel.wait_closed()
                ended.set()

        return session()

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(UPGRADE_REQUEST)
    await t.until(lambda: bool(t.writes))
    shutdown = asyncio.ensure_future(
        server.shutdown(timeout=seconds(5), code=1012, reason="restart")
    )
    await t.until(lambda: len(t.writes) == 2)
    assert server_frames(t.writes[1]) == [close_frame(1012, b"restart")]
    assert not shutdown.done()  # the client's close frame is awaited
    t.feed(wire(0x8, close_payload(1012)))
    await shutdown
    assert ended.is_set() and t.lost and not t.aborted
    assert server.channels == set()


async def test_shutdown_is_bounded_by_its_timeout(make_server: MakeServer) -> None:
    cancelled = asyncio.Event()
    handling = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        handling.set()
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = make_server(handler)
    stuck = FakeTransport(("10.0.0.1", 1))
    connect(server, stuck)
    stuck.feed(GET)
    await handling.wait()
    deaf = FakeTransport(("10.0.0.1", 2), linger=True)  # a WebSocket client that never answers
    connect(server, deaf).upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)
    await server.shutdown(timeout=seconds(0.05))
    assert cancelled.is_set()
    assert stuck.aborted and deaf.aborted
    assert server.connections == set() and server.tasks == set()
    await server.wait_closed()
    await server.shutdown()  # again: returns at once


async def test_shutdown_called_twice_waits_for_the_first(make_server: MakeServer) -> None:
    answer = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await answer.wait()
        conn.send_response(204, [], b"")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    first = asyncio.ensure_future(server.shutdown(timeout=seconds(5)))
    await server.wait_closing()
    second = asyncio.ensure_future(server.shutdown(timeout=seconds(5)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not first.done() and not second.done()
    answer.set()
    await asyncio.gather(first, second)


# -- a real socket ----------------------------------------------------------------------------


async def test_listen_on_a_free_port(make_server: MakeServer) -> None:
    server = make_server()
    await server.listen("127.0.0.1", 0)
    assert len(server.sockets) == 1
    assert server.port == server.sockets[0].getsockname()[1] > 0
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), seconds(5))
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\nhello")
    writer.close()
    await server.shutdown(timeout=seconds(5))
    assert server.sockets == []
