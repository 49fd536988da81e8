"""A server out of open files stops accepting instead of dropping connections: what arrives
meanwhile waits in the listen queue (or goes to the other worker of ``--processes 2``) and
is served once connections end. Real servers in subprocesses with a low open-file limit."""

from __future__ import annotations

import asyncio
import base64
import os
import re

import pytest

from tests.integration.cluster import ClusterServer
from tests.timing import eventually

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux descriptors")

#: The servers' soft open-file limit: far fewer descriptors than the clients below.
OPEN_FILES = 256


class Client:
    """A raw WebSocket client that connects and sends its handshake at once: ``upgraded``
    once the server answered 101, ``dropped`` if the connection failed or ended before an
    answer; neither while it waits."""

    def __init__(self, port: int) -> None:
        self.upgraded = False
        self.dropped = False
        self.writer: asyncio.StreamWriter | None = None
        self.task = asyncio.ensure_future(self._run(port))

    async def _run(self, port: int) -> None:
        try:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            self.writer.write(
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, OSError):
            self.dropped = True
            return
        assert head.startswith(b"HTTP/1.1 101"), head
        self.upgraded = True

    def close(self) -> None:
        self.task.cancel()
        if self.writer is not None:
            self.writer.transport.abort()


def open_clients(port: int, count: int) -> list[Client]:
    """``count`` connections opened at once, each sending its handshake when it connects."""
    return [Client(port) for _ in range(count)]


async def test_a_process_out_of_open_files_stops_accepting_and_serves_the_rest_later() -> None:
    server = await ClusterServer(open_files=OPEN_FILES).ready()
    clients: list[Client] = []
    try:
        clients = open_clients(server.port, OPEN_FILES + 64)  # more than it can hold
        await eventually(lambda: "stopped accepting" in server.log(), 10, "a pause")
        paused_at = int(re.search(r"stopped accepting: (\d+)", server.log()).group(1))  # type: ignore[union-attr]
        assert 0 < paused_at < OPEN_FILES
        await eventually(lambda: sum(c.upgraded for c in clients) >= paused_at, 10, "handshakes")
        held = [c for c in clients if c.upgraded]
        assert not [c for c in clients if c.dropped]
        for client in held:  # room again: the connections that waited are served
            client.close()
        waiting = [c for c in clients if c not in held]
        await eventually(lambda: all(c.upgraded or c.dropped for c in waiting), 20, "the rest")
        assert not [c for c in waiting if c.dropped]
        assert "accepting connections again" in server.log()
    finally:
        for client in clients:
            client.close()
        assert await server.stop() == 0


async def test_workers_out_of_open_files_leave_connections_to_each_other() -> None:
    server = await ClusterServer("--processes", "2", open_files=OPEN_FILES).ready()
    clients: list[Client] = []
    try:
        # More than one worker has room for, fewer than two have.
        clients = open_clients(server.port, OPEN_FILES + 32)
        await eventually(lambda: all(c.upgraded or c.dropped for c in clients), 20, "answers")
        assert not [c for c in clients if c.dropped]
    finally:
        for client in clients:
            client.close()
        assert await server.stop() == 0
