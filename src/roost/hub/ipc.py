"""The embedded broker for ``--processes N``: workers on one machine exchange hub messages
through a relay process over a Unix socket. No external server is needed.

Wire format, both ways: frames of a 5-byte header (payload length, 4 bytes big-endian; kind,
1 byte) and the payload. Kinds:

- ``HELLO``: from a worker, its node id (ASCII), first on every connection; the relay
  answers with an empty ``HELLO`` once it has taken the worker in.
- ``MESSAGE``: a hub message; the relay forwards it to every other worker.
- ``REFUSED`` (relay → worker): UTF-8 text saying why a frame was not forwarded.

Bounds: a frame over ``max_frame`` payload bytes is refused (the relay answers ``REFUSED``
and skips it; the link stays up). A peer that does not read gets at most ``max_buffer``
bytes queued for it; past that, frames for it are dropped (delivery is at-most-once),
counted, and logged once per stall.

If the relay dies, each worker reconnects with backoff (the supervisor starts a new relay on
the same socket), then the hub announces the node again (``Broker.on_reconnect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import cast

from roost.hub.broker import Broker, Deliver, Sequenced
from roost.hub.messages import Codec, Gone

logger = logging.getLogger("roost.hub")
_HEADER = struct.Struct("!IB")

#: Largest payload of one frame, in bytes (16 MiB).
MAX_FRAME = 16 * 1024 * 1024
#: Bytes queued for a peer that does not read before frames for it are dropped (32 MiB).
MAX_BUFFER = 32 * 1024 * 1024
#: Waits between two attempts to reach the relay again, in seconds: the first, the longest.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class Kind(enum.IntEnum):
    """What a frame carries."""

    HELLO = 1
    MESSAGE = 2
    REFUSED = 3


def encode(kind: Kind, payload: bytes) -> bytes:
    """One frame."""
    return _HEADER.pack(len(payload), kind) + payload


class Link(asyncio.Protocol):
    """One end of a worker-relay connection: frames in, bounded frames out.

    ``on_frame(link, kind, payload)`` gets every frame up to ``max_frame`` bytes;
    ``on_oversized(link, size)`` is told of a larger one, whose payload is then skipped
    without being buffered; ``on_lost(link)`` is called once when the connection ends.
    """

    def __init__(
        self,
        *,
        name: str,
        on_frame: Callable[[Link, int, bytes], None],
        on_oversized: Callable[[Link, int], None],
        on_lost: Callable[[Link], None],
        max_frame: int = MAX_FRAME,
        max_buffer: int = MAX_BUFFER,
    ) -> None:
        self.name = name
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.dropped = 0  # frames not sent to this peer because it was not reading
        self._on_frame = on_frame
        self._on_oversized = on_oversized
        self._on_lost = on_lost
        self._buf = bytearray()
        self._skip = 0  # payload bytes of a refused frame still to discard
        self._stalled = False
        self._stalled_since = 0  # ``dropped`` when the current stall began
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip :]
            self._skip = 0
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buf, pos)
            start = pos + _HEADER.size
            if size > self.max_frame:
                self._on_oversized(self, size)
                if end - start >= size:
                    pos = start + size
                    continue
                self._skip = size - (end - start)
                pos = end
                break
            if end - start < size:
                break
            pos = start + size
            self._on_frame(self, kind, bytes(buf[start:pos]))
        del buf[:pos]

    @property
    def buffered(self) -> int:
        """Bytes written to this peer that it has not read yet."""
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def write(self, frame: bytes) -> bool:
        """Queue an encoded frame; False if the link is down or the peer is not reading
        (then the frame is dropped and counted)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() + len(frame) > self.max_buffer:
            if not self._stalled:
                self._stalled = True
                self._stalled_since = self.dropped
                logger.warning(
                    "%s is not reading: dropping hub messages for it (over %d bytes queued)",
                    self.name,
                    self.max_buffer,
                )
            self.dropped += 1
            return False
        if self._stalled:
            self._stalled = False
            logger.warning(
                "%s is reading again; %d hub messages for it were dropped",
                self.name,
                self.dropped - self._stalled_since,
            )
        transport.write(frame)
        return True

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost(self)


class IpcBroker(Broker):
    """A worker's side: connects to the relay at ``path``, and again whenever the link is lost
    (waiting 50 ms, doubling up to 1 s between attempts). Messages published
    while the link is down are dropped and counted in ``dropped``; messages over ``max_frame``
    bytes are refused (logged, counted in ``refused``)."""

    def __init__(
        self, path: str, *, max_frame: int = MAX_FRAME, max_buffer: int = MAX_BUFFER
    ) -> None:
        self.path = path
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.dropped = 0
        self.refused = 0
        self._link: Link | None = None
        self._node_id = ""
        self._deliver: Deliver = lambda _: None
        self._lost = asyncio.Event()
        self._down = False
        self._dropped_before = 0  # ``dropped`` when the outage began
        self._announce = False  # whether the hub must announce itself once the link is up
        self._backoff = FIRST_BACKOFF
        self._keeper: asyncio.Task[None] | None = None

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        self._node_id = node_id
        self._deliver = deliver
        self._lost = asyncio.Event()
        try:
            await self._connect()
        except OSError as exc:
            self._went_down(exc)
        self._keeper = asyncio.create_task(self._keep_linked())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, link = await loop.create_unix_connection(
            lambda: Link(
                name="the worker relay",
                on_frame=self._frame,
                on_oversized=self._oversized,
                on_lost=self._link_lost,
                max_frame=self.max_frame,
                max_buffer=self.max_buffer,
            ),
            self.path,
        )
        link.write(encode(Kind.HELLO, self._node_id.encode("ascii")))
        self._link = link
        self._lost.clear()

    def _frame(self, link: Link, kind: int, payload: bytes) -> None:
        if kind == Kind.MESSAGE:
            self._deliver(payload)
        elif kind == Kind.HELLO:
            self._up()
        elif kind == Kind.REFUSED:
            logger.error("the worker relay refused a message: %s", payload.decode(errors="replace"))

    def _oversized(self, link: Link, size: int) -> None:
        logger.error("the worker relay sent a frame of %d bytes; reconnecting", size)
        link.close()

    def _link_lost(self, link: Link) -> None:
        if link is self._link:
            self._link = None
            self._went_down(None)
            self._lost.set()

    def _up(self) -> None:
        """The relay has taken this worker in."""
        self._backoff = FIRST_BACKOFF
        if self._down:
            self._down = False
            self.reconnects += 1
            logger.warning(
                "link to the worker relay re-established: cross-worker delivery resumed "
                "(%d messages dropped meanwhile)",
                self.dropped - self._dropped_before,
            )
        if self._announce and self._reconnected is not None:
            self._announce = False
            self._reconnected()

    def _went_down(self, exc: BaseException | None) -> None:
        self._announce = True  # what the hub published meanwhile is lost
        if not self._down:
            self._down = True
            self.outages += 1
            self._dropped_before = self.dropped
            logger.error(
                "lost the link to the worker relay%s: cross-worker delivery paused; reconnecting",
                f" ({exc})" if exc else "",
            )

    async def _keep_linked(self) -> None:
        while True:
            if self._link is not None:
                await self._lost.wait()
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)  # reset once the relay answers
            with contextlib.suppress(OSError):
                await self._connect()

    def publish(self, message: bytes) -> None:
        if len(message) > self.max_frame:
            self.refused += 1
            logger.error(
                "a hub message of %d bytes is over the relay's limit of %d bytes: "
                "not sent to the other workers",
                len(message),
                self.max_frame,
            )
            return
        link = self._link
        if link is None or not link.write(encode(Kind.MESSAGE, message)):
            self.dropped += 1

    @property
    def queued_bytes(self) -> int:
        """Bytes written to the relay link that its socket has not taken yet."""
        link = self._link
        return link.buffered if link is not None else 0

    async def stop(self, node_id: str) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        link, self._link = self._link, None
        if link is not None:
            link.close()


class Relay:
    """Forwards every message from one worker to all the others, and tells the others when a
    worker leaves (a hub ``gone`` message). ``dropped`` counts frames not delivered to stalled
    peers; ``refused`` counts oversized frames."""

    def __init__(self, *, max_frame: int = MAX_FRAME, max_buffer: int = MAX_BUFFER) -> None:
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.refused = 0
        self._links: dict[Link, str] = {}  # link -> node id, once it said HELLO
        self._codec = Codec()
        self._count = 0

    @property
    def dropped(self) -> int:
        """Frames dropped for peers that were not reading, over the open links."""
        return sum(link.dropped for link in self._links)

    def _make(self) -> Link:
        self._count += 1
        link = Link(
            name=f"worker link {self._count}",
            on_frame=self._frame,
            on_oversized=self._oversized,
            on_lost=self._lost,
            max_frame=self.max_frame,
            max_buffer=self.max_buffer,
        )
        self._links[link] = ""
        return link

    def _frame(self, link: Link, kind: int, payload: bytes) -> None:
        if kind == Kind.MESSAGE:
            frame = encode(Kind.MESSAGE, payload)
            for other in self._links:
                if other is not link:
                    other.write(frame)
        elif kind == Kind.HELLO:
            node = payload.decode("ascii", errors="replace")
            self._links[link] = node
            link.name = f"worker {node}"
            link.write(encode(Kind.HELLO, b""))
        else:
            link.write(encode(Kind.REFUSED, f"unknown frame kind {kind}".encode()))

    def _oversized(self, link: Link, size: int) -> None:
        self.refused += 1
        logger.error(
            "%s sent a frame of %d bytes, over the limit of %d: refused",
            link.name,
            size,
            self.max_frame,
        )
        reason = f"frame of {size} bytes refused: the relay's limit is {self.max_frame} bytes"
        link.write(encode(Kind.REFUSED, reason.encode()))

    def _lost(self, link: Link) -> None:
        node = self._links.pop(link, "")
        if node:
            gone = encode(Kind.MESSAGE, self._codec.encode(Gone(n=node)))
            for other in self._links:
                other.write(gone)

    async def serve(self, sock: socket.socket, *, control: int | None = None) -> None:
        """Relay on the listening Unix socket ``sock`` until the control pipe ``control``
        reaches end of file (its parent stopped it, or is gone), or forever."""
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(self._make, sock=sock)
        parent_gone = asyncio.Event()

        def read_control() -> None:
            fd = control
            assert fd is not None
            try:
                data = os.read(fd, 64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                parent_gone.set()

        if control is not None:
            os.set_blocking(control, False)
            loop.add_reader(control, read_control)
        await parent_gone.wait()
        server.close()
        for link in list(self._links):
            link.close()
