"""Connection churn against tests/integration/apps/churn_app.py run as a real server: clients
that open, talk and leave along every close path, with or without permessage-deflate.

Used by tests/integration/test_churn.py and by ``make soak`` (tests/integration/soak.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable

import orjson
import websockets

from tests.http_client import request
from tests.integration.guide_runner import ROOT, free_port
from tests.raw_ws import client_frame, connect, read_close, read_frame
from tests.timing import seconds

TIMEOUT = 10
DEFLATE = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}


class ChurnServer:
    """``python -m tests.integration.apps.churn_app`` on a free port, in its own process."""

    def __init__(self, *, no_gc: bool = False) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if no_gc:
            env["CHURN_NO_GC"] = "1"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.apps.churn_app",
                "--port",
                str(self.port),
                "--log-level",
                "CRITICAL",  # the handler that fails on purpose would log thousands of times
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ready(self) -> ChurnServer:
        """Wait until the server reports ready: its startup is over, and the objects alive
        then are frozen out of the counts (roost's GC tuning), so that only what later
        connections make is counted."""
        for _ in range(300):
            assert self.proc.poll() is None, "the server exited"
            try:
                reply = await request(self.port, "GET", "/readyz")
            except OSError:
                await asyncio.sleep(0.05)
                continue
            if reply.status == 200:
                return self
            await asyncio.sleep(0.05)
        raise TimeoutError("the server did not start")

    async def objects(self, *, collect: bool = False) -> dict[str, int]:
        """The server's live per-connection objects, by type."""
        reply = await request(self.port, "GET", "/objects?collect=1" if collect else "/objects")
        assert reply.status == 200, reply
        counts: dict[str, int] = orjson.loads(reply.body)["objects"]
        return counts

    def rss_kib(self) -> int:
        """The server process's resident set size (Linux: /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/PID/status")

    def stop(self) -> tuple[int, str]:
        """SIGTERM (graceful shutdown); the exit code and what the server printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=seconds(30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return self.proc.returncode, out


# -- one client per close path ------------------------------------------------------------------


def _ws_url(port: int, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{port}{path}"


async def _ws_client(port: int, compression: bool) -> websockets.ClientConnection:
    return await websockets.connect(
        _ws_url(port), compression="deflate" if compression else None, open_timeout=TIMEOUT
    )


async def _expect(ws: websockets.ClientConnection, wanted: str) -> None:
    """Read until ``wanted`` arrives (room broadcasts from others may come first)."""
    async with asyncio.timeout(TIMEOUT):
        while await ws.recv() != wanted:
            pass


async def _server_closes(port: int, compression: bool, command: str, code: int) -> None:
    ws = await _ws_client(port, compression)
    await ws.send("hello")
    await _expect(ws, "hello")
    await ws.send(command)
    await asyncio.wait_for(ws.wait_closed(), seconds(TIMEOUT))
    assert ws.close_code == code, (command, ws.close_code)


async def clean(port: int, compression: bool, n: int) -> None:
    """The client closes (1000) after an echo."""
    ws = await _ws_client(port, compression)
    await ws.send(f"hello {n}")
    await _expect(ws, f"hello {n}")
    await ws.close()
    assert ws.close_code == 1000


async def rooms(port: int, compression: bool, n: int) -> None:
    """The client joins a room, broadcasts to it, then closes."""
    ws = await _ws_client(port, compression)
    room = f"room-{n % 8}"
    await ws.send(f"join {room}")
    await _expect(ws, "joined")
    await ws.send(f"room {room} from {n}")
    await _expect(ws, f"from {n}")
    await ws.close()


async def server_close(port: int, compression: bool, n: int) -> None:
    """The handler returns: the server closes with 1000."""
    await _server_closes(port, compression, "bye", 1000)


async def kick(port: int, compression: bool, n: int) -> None:
    """The app disconnects the connection by id: 4000."""
    await _server_closes(port, compression, "kick", 4000)


async def handler_error(port: int, compression: bool, n: int) -> None:
    """The handler raises: 1011."""
    await _server_closes(port, compression, "boom", 1011)


async def _raw(
    port: int, compression: bool, path: str = "/ws"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer, head = await connect(port, path, DEFLATE if compression else None)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert (b"permessage-deflate" in head) is compression, head
    writer.write(client_frame(0x1, b"hello"))
    while (await read_frame(reader))[0] != 0x1:  # pings may come first
        pass
    return reader, writer


async def _until_eof(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):  # the server may drop it with a reset
        await asyncio.wait_for(reader.read(), seconds(TIMEOUT))


async def vanish(port: int, compression: bool, n: int) -> None:
    """The client drops the TCP connection with a reset, no close frame."""
    _, writer = await _raw(port, compression)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def eof(port: int, compression: bool, n: int) -> None:
    """The client closes the TCP connection without a close frame."""
    _, writer = await _raw(port, compression)
    writer.close()
    await writer.wait_closed()


async def protocol_error(port: int, compression: bool, n: int) -> None:
    """The client sends an unmasked frame: the server fails the connection with 1002."""
    reader, writer = await _raw(port, compression)
    writer.write(client_frame(0x1, b"unmasked", masked=False))
    assert await read_close(reader) == 1002
    await _until_eof(reader)
    writer.close()


async def silent(port: int, compression: bool, n: int) -> None:
    """The client stops answering pings: the server fails it (1011) and drops it."""
    reader, writer = await _raw(port, compression, "/ws-silent")
    assert await read_close(reader) == 1011
    await _until_eof(reader)
    writer.close()


async def deaf(port: int, compression: bool, n: int) -> None:
    """The server closes and the client never answers: dropped after the close timeout."""
    reader, writer = await _raw(port, compression, "/ws-deaf")
    writer.write(client_frame(0x1, b"bye"))
    assert await read_close(reader) == 1000
    await _until_eof(reader)
    writer.close()


async def http(port: int, compression: bool, n: int) -> None:
    """Plain HTTP, and an upgrade the server refuses (404)."""
    reply = await request(port, "GET", "/hello")
    assert reply.status == 200 and reply.body == b"hello", reply
    _, writer, head = await connect(port, "/nowhere", DEFLATE if compression else None)
    assert head.startswith(b"HTTP/1.1 404"), head
    writer.close()


ClosePath = Callable[[int, bool, int], Awaitable[None]]

#: Every way a connection ends, by name.
CLOSE_PATHS: dict[str, ClosePath] = {
    "clean": clean,
    "rooms": rooms,
    "server_close": server_close,
    "kick": kick,
    "handler_error": handler_error,
    "vanish": vanish,
    "eof": eof,
    "protocol_error": protocol_error,
    "silent": silent,
    "deaf": deaf,
    "http": http,
}


async def churn(port: int, *, per_path: int, compression: bool, concurrency: int = 100) -> None:
    """``per_path`` clients along each close path, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: ClosePath, n: int) -> None:
        async with gate:
            await path(port, compression, n)

    async with asyncio.TaskGroup() as group:
        for n in range(per_path):
            for path in CLOSE_PATHS.values():
                group.create_task(one(path, n))


async def settled(
    server: ChurnServer, expected: dict[str, int], seconds: float = 20
) -> dict[str, int]:
    """Poll the server's live objects until they equal ``expected``, for at most ``seconds``;
    return the last counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    counts = await server.objects()
    while counts != expected and loop.time() < deadline:
        await asyncio.sleep(0.1)
        counts = await server.objects()
    return counts
