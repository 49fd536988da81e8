"""The embedded broker for ``--processes N``: workers on one machine exchange hub messages
through a relay process over a Unix socket. No external server is needed. The relay is also
the sequencer and the store of rooms with history (``roost.hub.history``): it holds them in
memory, so they outlive any worker and are lost with the relay.

Wire format, both ways: frames of a 5-byte header (payload length, 4 bytes big-endian; kind,
1 byte) and the payload. Structured payloads are msgpack arrays (``msgspec`` structs below,
fields in order). Kinds:

- ``HELLO``: from a worker, its node id (ASCII), first on every connection; the relay
  answers with a ``HELLO`` once it has taken the worker in, carrying how many other workers
  it has (ASCII digits; the new worker's hub waits for their presence before serving).
- ``MESSAGE``: a hub message; the relay forwards it to every other worker.
- ``REFUSED`` (relay → worker): UTF-8 text saying why a frame was not taken.
- ``SEQUENCE`` (worker → relay): ``SequenceFrame`` (id, room key, the room's history size
  and ttl, body): give the body the room's next position and keep it.
- ``SEQUENCED`` (relay → every worker, the sender included): ``SequencedFrame`` (epoch,
  offset, body, ack); in the order of the offsets on every link. ``ack`` is the id of the
  ``SEQUENCE`` on the sender's link, 0 on the others.
- ``READ`` (worker → relay): ``ReadFrame`` (id, room key, size and ttl, the position to
  resume from or nil, how many messages to replay otherwise).
- ``HISTORY`` (relay → worker): ``HistoryFrame``, the answer to the ``READ`` of that id.

Bounds: a frame over ``max_frame`` payload bytes is refused (the relay answers ``REFUSED``
and skips it; the link stays up), and so is a ``SEQUENCE`` or ``READ`` that does not decode
or names an invalid history. A ``HISTORY`` answer is cut to the newest messages that fit in
one frame (a resume it cannot then satisfy is answered ``not_recovered``, reason
``trimmed``), and a replay to the room's size. The relay keeps the histories of at most
``max_rooms`` rooms, each within its own ``RoomHistory`` bounds. A peer that does not read
gets at most ``max_buffer`` bytes queued for it (and one answer to its own request past
that); past that, frames for it are dropped (delivery is at-most-once; a worker repairs a gap
in a room's offsets from the history), counted, and logged once per stall.

If the relay dies, each worker reconnects with backoff (the supervisor starts a new relay on
the same socket), then the hub announces the node again (``Broker.on_reconnect``). The new
relay starts with no history: rooms get new epochs, and clients that resume are told
``not_recovered``, reason ``epoch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Annotated, Any, cast

import msgspec

from roost.hub.broker import Broker, Deliver, Sequenced
from roost.hub.history import (
    MAX_ROOMS,
    HistoryRead,
    HistoryUnavailable,
    MemoryHistory,
    Position,
    RoomHistory,
)
from roost.hub.messages import Codec, Gone

logger = logging.getLogger("roost.hub")
_HEADER = struct.Struct("!IB")

#: Seconds a peer that stalled must read without stalling again before its burst of drops
#: is over (and logged with its count): a peer hovering at its bound makes one burst.
BURST_QUIET = 2.0
#: Most bytes of messages in one page of a history read (the hub reads a replay page by page).
PAGE_BYTES = 1024 * 1024
#: Largest payload of one frame, in bytes (16 MiB).
MAX_FRAME = 16 * 1024 * 1024
#: Bytes queued for a peer that does not read before frames for it are dropped (32 MiB).
MAX_BUFFER = 32 * 1024 * 1024
#: Waits between two attempts to reach the relay again, in seconds: the first, the longest.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0
#: Seconds a worker waits for the relay to confirm a sequenced message or answer a read (and,
#: when it starts, to take it in) before giving up: HistoryUnavailable.
TIMEOUT = 5.0
#: Bytes a ``SEQUENCED`` payload adds to its body, at most (epoch, offset, ack, msgpack).
SEQUENCED_OVERHEAD = 64
_ANSWER_OVERHEAD = 256  # bytes of a HISTORY payload besides its entries, epoch and reason
_ENTRY_OVERHEAD = 16  # bytes msgpack adds to each entry of a HISTORY payload, at most

_Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class Kind(enum.IntEnum):
    """What a frame carries."""

    HELLO = 1
    MESSAGE = 2
    REFUSED = 3
    SEQUENCE = 4
    SEQUENCED = 5
    READ = 6
    HISTORY = 7


class SequenceFrame(msgspec.Struct, array_like=True, frozen=True):
    """``SEQUENCE``: give ``body`` the next position of room ``key``, whose history keeps
    ``size`` messages for ``ttl`` seconds; ``id`` names the request on its link."""

    id: _Id
    key: str
    size: int
    ttl: float
    body: bytes


class SequencedFrame(msgspec.Struct, array_like=True, frozen=True):
    """``SEQUENCED``: ``body`` is at ``offset`` of ``epoch``; ``ack`` is the id of the
    sender's ``SEQUENCE`` (0 for the other workers)."""

    epoch: str
    offset: _Offset
    body: bytes
    ack: int = 0


class ReadFrame(msgspec.Struct, array_like=True, frozen=True):
    """``READ``: what a connection joining room ``key`` gets, resuming after ``since``
    ([epoch, offset], or nil) or else the last ``replay`` messages."""

    id: _Id
    key: str
    size: int
    ttl: float
    since: tuple[str, _Offset] | None
    replay: _Offset
    limit: _Offset = 0  # most entries to answer with (0: all that fit in a frame)


class HistoryFrame(msgspec.Struct, array_like=True, frozen=True):
    """``HISTORY``: the answer to ``READ`` ``id``, a ``HistoryRead`` field by field."""

    id: int
    kind: str
    epoch: str
    start: int
    entries: list[tuple[int, bytes]]
    reason: str = ""
    total: int = -1  # entries owed in all, when ``entries`` is a page of them


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
        self._stalled_since = 0  # ``dropped`` when the current burst of stalls began
        self._calm: asyncio.TimerHandle | None = None  # ends the burst, unless it stalls again
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

    def write(self, frame: bytes, *, answer: bool = False) -> bool:
        """Queue an encoded frame; False if the link is down or the peer is not reading
        (then the frame is dropped and counted). A frame would take the queue past
        ``max_buffer`` bytes: the peer is not reading. An ``answer`` to the peer's own request
        is queued while the queue is under ``max_buffer`` whatever its size (the queue stays
        under ``max_buffer`` + ``max_frame``), so a large answer still reaches a peer that
        reads."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        queued = transport.get_write_buffer_size()
        if queued + (0 if answer else len(frame)) > self.max_buffer:
            if not self._stalled:
                self._stalled = True
                if self._calm is not None:  # stalled again soon after: the same burst
                    self._calm.cancel()
                    self._calm = None
                else:
                    self._stalled_since = self.dropped
                    logger.warning(
                        "%s is not reading: dropping hub messages for it (over %d bytes queued)",
                        self.name,
                        self.max_buffer,
                    )
            self.dropped += 1
            return False
        if self._stalled and not answer:
            self._stalled = False
            loop = asyncio.get_running_loop()
            self._calm = loop.call_later(BURST_QUIET, self._burst_over)
        transport.write(frame)
        return True

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    def _burst_over(self) -> None:
        """The peer has read for BURST_QUIET seconds without stalling: one line for the burst."""
        self._calm = None
        logger.warning(
            "%s is reading again; %d hub messages for it were dropped",
            self.name,
            self.dropped - self._stalled_since,
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._calm is not None:
            self._calm.cancel()
            self._burst_over()
        self._on_lost(self)


class IpcBroker(Broker):
    """A worker's side: connects to the relay at ``path``, and again whenever the link is lost
    (waiting 50 ms, doubling up to 1 s between attempts). Messages published while the link is
    down are dropped and counted in ``dropped``; messages over ``max_frame`` bytes are refused
    (logged, counted in ``refused``).

    Rooms with history go through the relay: ``sequence`` returns once the relay has given
    the message its position (and this worker has delivered it), ``read_history`` once the
    relay has answered. Both raise HistoryUnavailable at once while the relay has not taken
    this worker in (the link is down or coming back), for a message over ``max_frame``, and
    after ``timeout`` seconds (5) without an answer; pending ones fail as soon as the link is
    lost. ``start`` waits up to ``timeout`` seconds for the relay to take the worker in.
    """

    def __init__(
        self,
        path: str,
        *,
        max_frame: int = MAX_FRAME,
        max_buffer: int = MAX_BUFFER,
        timeout: float = TIMEOUT,
    ) -> None:
        self.path = path
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.timeout = timeout
        self.dropped = 0
        self.refused = 0
        self._link: Link | None = None
        self._node_id = ""
        self._deliver: Deliver = lambda _: None
        self._sequenced: Sequenced = lambda epoch, offset, body: None
        self._lost = asyncio.Event()
        self._linked = asyncio.Event()  # set while the relay has taken this worker in
        self._down = False
        self._dropped_before = 0  # ``dropped`` when the outage began
        self._announce = False  # whether the hub must announce itself once the link is up
        self._backoff = FIRST_BACKOFF
        self._keeper: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[None]] = {}  # SEQUENCE id -> its confirmation
        self._reads: dict[int, asyncio.Future[HistoryRead[bytes]]] = {}  # READ id -> answer
        self._encoder = msgspec.msgpack.Encoder()
        self._sequenced_decoder = msgspec.msgpack.Decoder(SequencedFrame)
        self._history_decoder = msgspec.msgpack.Decoder(HistoryFrame)

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        self._node_id = node_id
        self._deliver = deliver
        if sequenced is not None:
            self._sequenced = sequenced
        self._lost = asyncio.Event()
        self._linked = asyncio.Event()
        try:
            await self._connect()
        except OSError as exc:
            self._went_down(exc)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._linked.wait(), self.timeout)
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
        elif kind == Kind.SEQUENCED:
            self._on_sequenced(payload)
        elif kind == Kind.HISTORY:
            self._on_history(payload)
        elif kind == Kind.HELLO:
            self.peers = int(payload) if payload.isdigit() else 0
            self._up()
        elif kind == Kind.REFUSED:
            logger.error("the worker relay refused a frame: %s", payload.decode(errors="replace"))

    def _on_sequenced(self, payload: bytes) -> None:
        try:
            frame = self._sequenced_decoder.decode(payload)
        except msgspec.MsgspecError as exc:
            logger.error("the worker relay sent a malformed SEQUENCED frame: %s", exc)
            return
        try:
            self._sequenced(frame.epoch, frame.offset, frame.body)
        finally:
            if frame.ack:
                _resolve(self._acks.pop(frame.ack, None), None)

    def _on_history(self, payload: bytes) -> None:
        try:
            frame = self._history_decoder.decode(payload)
        except msgspec.MsgspecError as exc:
            logger.error("the worker relay sent a malformed HISTORY frame: %s", exc)
            return
        read = HistoryRead(
            frame.kind, frame.epoch, frame.start, frame.entries, frame.reason, frame.total
        )
        _resolve(self._reads.pop(frame.id, None), read)

    def _oversized(self, link: Link, size: int) -> None:
        logger.error("the worker relay sent a frame of %d bytes; reconnecting", size)
        link.close()

    def _link_lost(self, link: Link) -> None:
        if link is self._link:
            self._link = None
            self._linked.clear()
            self._fail_pending("lost the link to the worker relay before it answered")
            self._went_down(None)
            self._lost.set()

    def _fail_pending(self, why: str) -> None:
        """Fail every sequence and read waiting for the relay."""
        pending: list[asyncio.Future[Any]] = [*self._acks.values(), *self._reads.values()]
        self._acks.clear()
        self._reads.clear()
        for future in pending:
            if not future.done():
                future.set_exception(HistoryUnavailable(why))

    def _up(self) -> None:
        """The relay has taken this worker in."""
        self._backoff = FIRST_BACKOFF
        self._linked.set()
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

    # -- rooms with history ------------------------------------------------------------------

    def _ready_link(self) -> Link:
        """The link to a relay that has taken this worker in; HistoryUnavailable if none."""
        link = self._link
        if link is None or not self._linked.is_set():
            raise HistoryUnavailable("the worker relay is not reachable (reconnecting)")
        return link

    async def _ask(
        self,
        link: Link,
        pending: dict[int, asyncio.Future[Any]],
        request_id: int,
        kind: Kind,
        payload: bytes,
    ) -> Any:
        """Send a request frame and wait for its answer (at most ``timeout`` seconds)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending[request_id] = future
        try:
            if not link.write(encode(kind, payload)):
                self.dropped += 1
                raise HistoryUnavailable("the worker relay is not reading (its queue is full)")
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise HistoryUnavailable(
                f"the worker relay did not answer within {self.timeout:g} s"
            ) from None
        finally:
            pending.pop(request_id, None)

    async def sequence(self, key: str, history: RoomHistory, body: bytes) -> None:
        """Have the relay give ``body`` the next position of room ``key``; returns once it
        has (this worker's members have it then). HistoryUnavailable: the relay is not
        reachable, the message is over ``max_frame``, or no confirmation came within
        ``timeout`` seconds (then whether it was sequenced is not known)."""
        link = self._ready_link()
        request_id = next(self._ids)
        payload = self._encoder.encode(
            SequenceFrame(request_id, key, history.size, history.ttl, body)
        )
        if len(payload) > self.max_frame or len(body) + SEQUENCED_OVERHEAD > self.max_frame:
            self.refused += 1
            raise HistoryUnavailable(
                f"a room message of {len(body)} bytes is over the relay's limit of "
                f"{self.max_frame} bytes"
            )
        pending = cast(dict[int, asyncio.Future[Any]], self._acks)
        await self._ask(link, pending, request_id, Kind.SEQUENCE, payload)

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        link = self._ready_link()
        request_id = next(self._ids)
        position = None if since is None else (since.epoch, since.offset)
        frame = ReadFrame(
            request_id, key, history.size, history.ttl, position, min(replay, history.size), limit
        )
        payload = self._encoder.encode(frame)
        if len(payload) > self.max_frame:
            raise HistoryUnavailable(f"a history read of {len(payload)} bytes is too large")
        pending = cast(dict[int, asyncio.Future[Any]], self._reads)
        read: HistoryRead[bytes] = await self._ask(link, pending, request_id, Kind.READ, payload)
        return read

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
        self._linked.clear()
        self._fail_pending("the broker stopped")
        if link is not None:
            link.close()


def _resolve(future: asyncio.Future[Any] | None, result: Any) -> None:
    if future is not None and not future.done():
        future.set_result(result)


class Relay:
    """Forwards every message from one worker to all the others, and tells the others when a
    worker leaves (a hub ``gone`` message). Sequences and keeps the messages of rooms with
    history in ``history`` (at most ``max_rooms`` rooms, 100,000 by default; the room used
    least recently loses its history first), and answers reads of it; ``clock`` gives the
    seconds its ttls are counted in (monotonic). ``dropped`` counts frames not delivered to
    stalled peers; ``refused`` counts frames refused (oversized or malformed)."""

    def __init__(
        self,
        *,
        max_frame: int = MAX_FRAME,
        max_buffer: int = MAX_BUFFER,
        max_rooms: int = MAX_ROOMS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.refused = 0
        #: The rooms with history, by room key: their epochs, offsets and messages.
        self.history = MemoryHistory[bytes](clock=clock, max_rooms=max_rooms)
        self._links: dict[Link, str] = {}  # link -> node id, once it said HELLO
        self._codec = Codec()
        self._count = 0
        self._encoder = msgspec.msgpack.Encoder()
        self._sequence_decoder = msgspec.msgpack.Decoder(SequenceFrame)
        self._read_decoder = msgspec.msgpack.Decoder(ReadFrame)

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
        elif kind == Kind.SEQUENCE:
            self._sequence(link, payload)
        elif kind == Kind.READ:
            self._read(link, payload)
        elif kind == Kind.HELLO:
            node = payload.decode("ascii", errors="replace")
            self._links[link] = node
            link.name = f"worker {node}"
            others = sum(1 for peer, name in self._links.items() if name and peer is not link)
            link.write(encode(Kind.HELLO, str(others).encode("ascii")))  # whose state to await
        else:
            self._refuse(link, f"unknown frame kind {kind}")

    def _refuse(self, link: Link, reason: str) -> None:
        self.refused += 1
        logger.error("%s: %s", link.name, reason)
        link.write(encode(Kind.REFUSED, reason.encode()))

    def _sequence(self, link: Link, payload: bytes) -> None:
        try:
            frame = self._sequence_decoder.decode(payload)
            config = RoomHistory(size=frame.size, ttl=frame.ttl)
        except (msgspec.MsgspecError, ValueError) as exc:
            self._refuse(link, f"malformed SEQUENCE frame: {exc}")
            return
        if len(frame.body) + SEQUENCED_OVERHEAD > self.max_frame:
            self._refuse(
                link,
                f"SEQUENCE body of {len(frame.body)} bytes refused: the relay's limit is "
                f"{self.max_frame - SEQUENCED_OVERHEAD} bytes",
            )
            return
        epoch, offset = self.history.append(frame.key, frame.body, config)
        encoded = self._encoder.encode(SequencedFrame(epoch, offset, frame.body))
        out = encode(Kind.SEQUENCED, encoded)
        for other in self._links:
            if other is not link:
                other.write(out)
        ack = self._encoder.encode(SequencedFrame(epoch, offset, frame.body, frame.id))
        link.write(encode(Kind.SEQUENCED, ack), answer=True)

    def _read(self, link: Link, payload: bytes) -> None:
        try:
            frame = self._read_decoder.decode(payload)
            config = RoomHistory(size=frame.size, ttl=frame.ttl)
        except (msgspec.MsgspecError, ValueError) as exc:
            self._refuse(link, f"malformed READ frame: {exc}")
            return
        since = None if frame.since is None else Position(*frame.since)
        read = self.history.read(
            frame.key, config, since, min(frame.replay, config.size), frame.limit
        )
        if frame.limit:  # a page: the oldest entries that fit in PAGE_BYTES (at least one)
            budget, kept = PAGE_BYTES, 0
            for _, body in read.entries:
                budget -= len(body) + _ENTRY_OVERHEAD
                if budget < 0 and kept:
                    break
                kept += 1
            del read.entries[kept:]
        link.write(encode(Kind.HISTORY, self._answer(frame.id, read)), answer=True)

    def _answer(self, request_id: int, read: HistoryRead[bytes]) -> bytes:
        """The ``HISTORY`` payload for ``read``, cut to the newest entries that fit in one
        frame (a recovery that no longer fits becomes ``not_recovered``, ``trimmed``)."""
        entries = read.entries
        budget = self.max_frame - _ANSWER_OVERHEAD - len(read.epoch) - len(read.reason)
        total = sum(len(body) + _ENTRY_OVERHEAD for _, body in entries)
        if total > budget:
            kept = 0
            while kept < len(entries):
                size = len(entries[-1 - kept][1]) + _ENTRY_OVERHEAD
                if size > budget:
                    break
                budget -= size
                kept += 1
            cut = entries[len(entries) - kept :]
            start = cut[0][0] - 1 if cut else entries[-1][0]
            logger.warning(
                "a history answer of %d messages (%d bytes) is over the frame limit: sending "
                "the newest %d",
                len(entries),
                total,
                kept,
            )
            kind, reason = read.kind, read.reason
            if kind == "recovered":
                kind, reason = "not_recovered", "trimmed"
            read = HistoryRead(kind, read.epoch, start, cut, reason)
        return self._encoder.encode(
            HistoryFrame(
                request_id,
                read.kind,
                read.epoch,
                read.start,
                read.entries,
                read.reason,
                read.total if read.entries is entries else len(read.entries),
            )
        )

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
        reaches end of file (its parent stopped it, or is gone), or until cancelled; then
        close the socket and every link."""
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
        try:
            await parent_gone.wait()
        finally:  # stopped, or cancelled: either way the links close
            if control is not None:
                loop.remove_reader(control)
            server.close()
            for link in list(self._links):
                link.close()
