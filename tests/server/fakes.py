"""Stand-ins for the socket in server tests: an in-memory transport that records what roost
writes and lets the test play the client, and helpers that read server frames back."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from roost.protocol.handshake import accept_response
from roost.server.http import HttpConnection
from roost.server.serve import Server
from tests.timing import eventually, seconds

__all__ = [
    "SWITCHING",
    "UPGRADE_REQUEST",
    "FakeTransport",
    "close_frame",
    "connect",
    "eventually",
    "server_frames",
]

#: A WebSocket handshake request (RFC 6455 section 1.3's sample key) and the 101 accepting it.
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE_REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + WS_KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHING = accept_response(WS_KEY)


class FakeTransport(asyncio.Transport):
    """The asyncio.Transport methods roost uses, in memory.

    Writes are recorded one by one in ``writes``; ``buffer_size`` is what
    ``get_write_buffer_size`` reports. ``close()`` and ``abort()`` end the connection on the
    next turn of the loop, as a socket transport does once its buffer is empty, except that
    with ``linger`` set ``close()`` never finishes (a client that does not read), so only
    ``abort()`` ends it. ``feed()`` and ``lose()`` play the client.
    """

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000), *, linger: bool = False):
        super().__init__()
        self.peer = peer
        self.linger = linger
        self.protocol: asyncio.Protocol | None = None
        self.writes: list[bytes] = []
        self.buffer_size = 0
        self.write_limits: tuple[int | None, int | None] | None = None
        self.reading = True
        self.pauses = 0  # pause_reading calls that paused
        self.closing = False
        self.aborted = False
        self.lost = False
        self.eof_written = False
        self.endings: list[str] = []  # "close", "abort", "lost", in the order they happened
        self._changed = asyncio.Event()

    # -- what roost calls --------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lost:
            return
        self.writes.append(bytes(data))
        self._notify()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True
        self._notify()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.endings.append("close")
        self._notify()
        if not self.linger:
            asyncio.get_running_loop().call_soon(self._end)

    def abort(self) -> None:
        self.closing = True
        self.aborted = True
        self.endings.append("abort")
        self._notify()
        asyncio.get_running_loop().call_soon(self._end)

    def pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.pauses += 1
            self._notify()

    def resume_reading(self) -> None:
        if not self.reading:
            self.reading = True
            self._notify()

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.write_limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return self.buffer_size

    # -- what the test calls -----------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """Everything written so far."""
        return b"".join(self.writes)

    def feed(self, data: bytes) -> None:
        """The client sends ``data``; like a socket transport, this one delivers nothing while
        reading is paused or once it is closing."""
        assert self.protocol is not None
        assert self.reading, "reading is paused"
        assert not self.closing, "the transport is closing"
        self.protocol.data_received(data)

    def lose(self) -> None:
        """The client drops the connection, now."""
        self._end()

    def _end(self) -> None:
        if self.lost:
            return
        self.lost = True
        self.closing = True
        self.endings.append("lost")
        self._notify()
        assert self.protocol is not None
        self.protocol.connection_lost(None)

    def _notify(self) -> None:
        self._changed.set()

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait, at most ``seconds(timeout)``, until ``check()`` holds; it is tried again on
        every change of this transport (a write, a pause, a close)."""
        async with asyncio.timeout(seconds(timeout)):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    async def expect(self, expected: bytes, timeout: float = 5.0) -> None:
        """Wait until as many bytes as ``expected`` are written, then check they are it."""
        await self.until(lambda: len(self.data) >= len(expected), timeout)
        assert self.data == expected

    async def until_lost(self, timeout: float = 5.0) -> None:
        """Wait until the connection has ended."""
        await self.until(lambda: self.lost, timeout)


def connect(server: Server, transport: FakeTransport) -> HttpConnection:
    """Accept ``transport`` as a new connection of ``server``, as ``create_server`` would."""
    conn = HttpConnection(server)
    transport.protocol = conn
    conn.connection_made(transport)
    return conn


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split ``data`` into the server's frames, ``(opcode, payload)`` each: unmasked, final
    (RFC 6455 section 5.2; a server never fragments what roost sends)."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80, "a frame without FIN"
        assert not b1 & 0x80, "a masked server frame"
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        frames.append((b0 & 0x0F, data[pos : pos + n]))
        pos += n
    assert pos == len(data), "a frame cut short"
    return frames


def close_frame(code: int, reason: bytes = b"") -> tuple[int, bytes]:
    """A close frame as ``server_frames`` returns it."""
    return (0x8, struct.pack("!H", code) + reason)
