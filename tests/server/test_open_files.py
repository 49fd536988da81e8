"""Server: accepting within the open-file limit. The room the limit leaves, the listen queue
kept shorter than it, and accepting stopped and started again, on a real listening socket.
(tests/integration/test_open_files.py runs servers whose limit is really reached.)"""

from __future__ import annotations

import asyncio
import os
import resource

import pytest

from roost.server import serve
from roost.server.http import HttpConnection
from roost.server.serve import FD_SPARE, RESUME_ROOM, open_file_room
from tests.server.conftest import MakeServer
from tests.timing import eventually, seconds

pytestmark = [
    pytest.mark.timeout(10),
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd"),
]


def test_the_room_is_the_soft_limit_less_the_open_files_and_a_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1000, 4000))
    room = open_file_room()
    open_now = len(os.listdir("/proc/self/fd")) - 1
    assert room == 1000 - open_now - FD_SPARE


@pytest.mark.parametrize("soft", [resource.RLIM_INFINITY, 8])
def test_no_limit_or_a_tiny_one_is_left_alone(monkeypatch: pytest.MonkeyPatch, soft: int) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda what: (soft, soft))
    assert open_file_room() is None


async def get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), seconds(5))
    writer.close()
    return reply


async def test_the_queue_stays_shorter_than_the_room_and_accepting_stops_without_room(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    queues: list[int] = []
    listen = serve._listen
    monkeypatch.setattr(serve, "_listen", lambda sock, n: (queues.append(n), listen(sock, n)))
    server = make_server()
    await server.listen("127.0.0.1", 0, backlog=100)
    server.fd_room = 300  # as if the limit left room for 300 connections
    held = [object.__new__(HttpConnection) for _ in range(300)]
    for count, conn in enumerate(held, 1):
        server.opened(conn)
        room = 300 - count
        if room > 1:
            assert server.accepting
            assert not queues or queues[-1] <= room - 1
    assert not server.accepting  # no room: stopped
    assert 0 < len(queues) < 20  # shortened a few times, not on every connection
    accepted = len(server.connections)
    connecting = asyncio.ensure_future(get(server.port))
    for conn in held[: RESUME_ROOM + 2]:
        server.ended(conn)
    await eventually(lambda: server.accepting, 5, "accepting again")
    # The connection that waited in the queue meanwhile is served now.
    assert (await connecting).startswith(b"HTTP/1.1 200")
    await eventually(
        lambda: len(server.connections) == accepted - RESUME_ROOM - 2, 5, "the GET's end"
    )
    for conn in held[RESUME_ROOM + 2 :]:
        server.ended(conn)
    assert queues[-1] == 100  # room again: the queue asked for
