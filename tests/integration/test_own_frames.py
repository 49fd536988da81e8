"""Frames roost writes on its own (pongs, close echoes, pings) stay bounded when the client never
reads, and a close frame never overtakes the messages queued before it."""

from __future__ import annotations

import asyncio
import struct
import sys

import pytest
import websockets

from roost import Roost
from roost.server.serve import Server
from tests.raw_ws import client_frame, connect, never_reading_client, read_frame
from tests.timing import seconds

WRITE_LIMIT = 16 * 1024
READ_SIZE = 256 * 1024  # what one read from the socket may bring (asyncio and uvloop alike)
PING = client_frame(9, b"p" * 125)  # its pong is 127 bytes: nearly as big as the ping
BOUND = WRITE_LIMIT + READ_SIZE  # the pongs of one read may go out past write_limit, no more

# A client in its own process: handshake, then pings as fast as it can, never reading.
FLOODER = f"""
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sock.connect(("127.0.0.1", int(sys.argv[1])))
sock.sendall(
    b"GET /flood HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
)
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += sock.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
print("open", flush=True)
batch = {PING!r} * 8192
try:
    while True:
        sock.sendall(batch)
except OSError:
    pass
"""


def flood_app() -> Roost:
    app = Roost(__file__)

    @app.websocket("/flood", write_limit=WRITE_LIMIT, ping_interval=None, compression=False)
    async def flood(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive()  # pings are not messages: this waits for ever

    @app.websocket("/echo")
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    return app


async def flooded_until_paused(server: Server) -> int:
    """Watch the flooded connection until roost stops reading it; the peak of its buffer."""
    await wait_for(lambda: len(server.channels) == 1)
    (channel,) = server.channels
    peak = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not channel.reading_paused:
        peak = max(peak, channel.buffered)
        assert peak <= BOUND, f"outbound buffer at {peak} bytes"
        assert loop.time() < deadline, "roost never stopped reading the flood"
        await asyncio.sleep(0.001)
    return max(peak, channel.buffered)


async def wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def still_serves(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo") as ws:
        for i in range(20):
            await ws.send(f"still here {i}")
            assert await asyncio.wait_for(ws.recv(), seconds(5)) == f"still here {i}"


async def test_ping_flood_from_another_process_is_bounded(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(flood_app()) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, str(server.port), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), seconds(10)) == b"open\n"
            peak = await flooded_until_paused(server)
            assert peak <= BOUND
            await still_serves(server.port)
            (flooded,) = [c for c in server.channels if c.reading_paused]
            assert flooded.buffered <= BOUND  # nothing more was read, so nothing more written
        finally:
            proc.kill()
            await proc.wait()


async def test_ping_flood_in_the_same_loop_is_bounded(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(flood_app()) as server:
        loop = asyncio.get_running_loop()
        sock = await never_reading_client(server.port, "/flood")

        async def flood() -> None:
            batch = PING * 8192
            while True:
                await loop.sock_sendall(sock, batch)

        flooding = asyncio.create_task(flood())
        try:
            assert await flooded_until_paused(server) <= BOUND
            await still_serves(server.port)
        finally:
            flooding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await flooding
            sock.close()


async def test_a_coalesced_ping_is_answered_once_the_client_reads(serve) -> None:  # type: ignore[no-untyped-def]
    """RFC 6455 section 5.5.3: with the buffer full, only the latest ping gets its pong, and
    it gets it once the client has read what was queued before."""
    app = Roost(__file__)

    @app.websocket("/big", write_limit=WRITE_LIMIT, ping_interval=None, compression=False)
    async def big(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive()
        await websocket.send_bytes(b"x" * (8 * 1024 * 1024))  # far more than the socket holds
        await websocket.receive()

    async with serve(app) as server:
        reader, writer, _ = await connect(server.port, "/big")
        writer.write(client_frame(2, b"go"))
        await wait_for(lambda: any(c.buffered > WRITE_LIMIT for c in server.channels))
        writer.write(b"".join(client_frame(9, b"%d" % i) for i in range(100)))
        await wait_for(lambda: any(c.reading_paused for c in server.channels))
        assert await read_frame(reader) == (2, b"x" * (8 * 1024 * 1024))
        assert await read_frame(reader) == (10, b"99")  # the latest ping only
        writer.write(client_frame(9, b"again"))  # the buffer drained: answered at once
        assert await read_frame(reader) == (10, b"again")
        writer.close()


LAST_WORDS = {  # what the client sends last, and the close code roost answers it with
    "close": (client_frame(8, struct.pack("!H", 1000) + b"bye"), 1000),
    "violation": (client_frame(3, b""), 1002),  # a reserved opcode
}


@pytest.mark.parametrize("last", sorted(LAST_WORDS))
@pytest.mark.parametrize("turns", [0, 1])
async def test_messages_queued_before_the_clients_close_go_out_first(  # type: ignore[no-untyped-def]
    serve, turns: int, last: str
) -> None:
    app = Roost(__file__)
    ids: list[str] = []

    @app.websocket("/ws", ping_interval=None, compression=False)
    async def ws(websocket):  # type: ignore[no-untyped-def]
        ids.append(websocket.id)
        await websocket.receive()

    async with serve(app) as server:
        reader, writer, _ = await connect(server.port, "/ws")
        await wait_for(lambda: bool(ids))
        # The close is in the server's socket now; roost reads it in this turn of the loop or
        # the next, depending on the event loop. One of the two puts it in the same turn as
        # the messages below, which roost writes only at the end of that turn.
        data, code = LAST_WORDS[last]
        writer.write(data)
        for _ in range(turns):
            await asyncio.sleep(0)
        sent = [
            await app.send_to(ids[0], "first"),
            await app.broadcast("/ws", "second") == 1,
            await app.send_to(ids[0], b"third"),
        ]
        expected = [
            frame
            for frame, ok in zip([(1, b"first"), (1, b"second"), (2, b"third")], sent, strict=True)
            if ok
        ]
        received = []
        while True:
            frame = await read_frame(reader)
            if frame[0] == 8:
                break
            received.append(frame)
        assert received == expected
        assert frame[1][:2] == struct.pack("!H", code)
        assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
        writer.close()
        # asyncio's selector loop runs what a turn scheduled before the next turn's reads;
        # uvloop reads first. The case that puts the close in the messages' turn must have
        # queued them all, or this test would check nothing.
        if turns == (1 if isinstance(server.loop, asyncio.SelectorEventLoop) else 0):
            assert all(sent)


async def test_a_coalesced_ping_is_answered_with_the_next_broadcast(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.websocket(
        "/feed",
        write_limit=WRITE_LIMIT,
        max_outbound_buffer=64 * 1024 * 1024,
        ping_interval=None,
        compression=False,
    )
    async def feed(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive()

    async with serve(app) as server:
        sock = await never_reading_client(server.port, "/feed")
        await wait_for(lambda: len(server.channels) == 1)
        (channel,) = server.channels
        chunks = 0
        while channel.buffered <= WRITE_LIMIT:  # until the client is behind
            assert await app.broadcast("/feed", "x" * 65536) == 1
            chunks += 1
            await asyncio.sleep(0)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(client_frame(9, b"a") + client_frame(9, b"b"))
        await wait_for(lambda: channel.reading_paused)
        assert await app.broadcast("/feed", "after") == 1
        assert not channel.reading_paused  # the pong is on its way: reading resumed
        for _ in range(chunks):
            assert await read_frame(reader) == (1, b"x" * 65536)
        assert await read_frame(reader) == (10, b"b")  # the latest ping, then the message
        assert await read_frame(reader) == (1, b"after")
        writer.close()
