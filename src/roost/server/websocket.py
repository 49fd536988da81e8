"""A WebSocket connection's I/O: received messages queued for the handler, frames written
(corked per loop turn for broadcasts), flow control and the slow-consumer policy, and the
WebSocket timers (ping, idle, close). The protocol itself is roost.protocol's.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from roost.protocol.connection import SharedMessage, State, WebSocketConnection
from roost.protocol.deflate import PerMessageDeflate
from roost.protocol.errors import InvalidState, WebSocketDisconnect
from roost.protocol.events import Closed, Pong
from roost.server.flow import Drain
from roost.server.options import WebSocketOptions
from roost.server.stats import ServerStats

if TYPE_CHECKING:
    from roost.server.serve import Server

__all__ = ["WebSocketChannel"]

_OPEN = State.OPEN


class WebSocketChannel:
    """A WebSocket connection's I/O: queues received messages, writes frames, runs its timers."""

    __slots__ = (
        "_close_handle",
        "_corked",
        "_corked_size",
        "_delivered",
        "_disconnect",
        "_drain",
        "_last_message",
        "_next_ping",
        "_next_release",
        "_outbound_limit",
        "_owing_pong",
        "_ping_handle",
        "_ping_payload",
        "_ping_sent",
        "_queue",
        "_reading_paused",
        "_server",
        "_waiter",
        "bytes_in",
        "bytes_out",
        "client",
        "conn",
        "dropped",
        "ended",
        "high_water",
        "loop",
        "messages_in",
        "messages_out",
        "on_lost",
        "options",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        server: Server,
        transport: asyncio.Transport,
        options: WebSocketOptions,
        deflate: PerMessageDeflate | None,
        *,
        client: tuple[str, int],
        write_paused: bool = False,
    ) -> None:
        self.loop = server.loop
        self.transport = transport
        self.ended = False  # the TCP connection is gone
        self.client = client
        self.options = options
        self.conn = WebSocketConnection(
            max_message_size=options.max_message_size, deflate=deflate, defer_failure=True
        )
        # Received messages the handler has not taken; made by the first read, so that a
        # connection that never sends does not carry it.
        self._queue: deque[str | bytes] | None = None
        self._waiter: asyncio.Future[str | bytes] | None = None
        self._reading_paused = False
        self._disconnect: WebSocketDisconnect | None = None
        self._delivered = False  # a message went to a waiter that has not asked again yet
        self._corked: list[bytes] | None = None  # frames queued by send_nowait, not written yet
        self._corked_size = 0  # while corked: the socket's buffer plus the corked frames
        self._server = server
        self._outbound_limit = options.max_outbound_buffer
        self.write_paused = write_paused
        self.conn.coalesce_pongs = self.write_paused
        self._owing_pong = False  # reading waits until the pong to a coalesced ping is written
        self._drain = Drain(self.loop)
        self._close_handle: asyncio.TimerHandle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_sent: float | None = None  # when the unanswered keepalive ping was sent
        self._ping_payload = b""
        now = self.loop.time()
        self._last_message = now  # when the last whole message arrived (or reading resumed)
        self._next_ping = now + (options.ping_interval or 0.0)
        # A compressor with context takeover is dropped once it goes unused for a period.
        self._next_release: float | None = None
        idle = options.compression_idle_timeout
        if deflate is not None and deflate.shared_deflater is None and idle is not None:
            self._next_release = now + idle
        self.dropped = 0
        self.messages_in = 0  # whole messages received
        self.messages_out = 0  # messages written (send_*, and send_nowait's when flushed)
        self.bytes_in = 0  # bytes read from the socket
        self.bytes_out = 0  # bytes of the messages' frames written
        self.high_water = 0  # the largest outbound buffer seen (a flush, a write pause)
        self.on_lost: list[Callable[[], object]] | None = None
        transport.set_write_buffer_limits(high=options.write_limit)
        self._schedule_keepalive(now)

    @property
    def open(self) -> bool:
        """Whether messages can still be sent."""
        return self.conn.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closing or closed."""
        return self.conn.close_code

    @property
    def closed_by(self) -> str:
        """Who began the closing: ``"client"`` (its close frame came first, or it dropped the
        TCP connection without one: close code 1006) or ``"server"``."""
        conn = self.conn
        return "server" if conn.close_sent and not conn.peer_closed_first else "client"

    @property
    def stats(self) -> ServerStats:
        """The counters of the server this connection belongs to."""
        return self._server.stats

    @property
    def shutting_down(self) -> bool:
        """Whether the server this connection belongs to is shutting down."""
        return self._server.closing

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` (work for this connection, such as its on_close) so that graceful
        shutdown waits for it."""
        self._server.track(task)

    @property
    def reading_paused(self) -> bool:
        """Whether roost has stopped reading the socket: ``max_queue`` messages wait unread,
        or a pong is owed to a client that pings while not reading what it is sent."""
        return self._reading_paused or self._owing_pong

    @property
    def buffered(self) -> int:
        """Bytes queued or written but not yet accepted by the socket."""
        if self._corked is not None:
            return self._corked_size
        return self.transport.get_write_buffer_size()

    # -- receiving ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        self.bytes_in += len(data)
        # Our close frame is out: read on for the peer's, keeping no more than max_queue.
        draining = conn.state is State.CLOSING
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if draining:
            limit = None  # the close frame must be found; messages past max_queue are dropped
        else:
            # Parse no more messages than the queue has room for (one more when a receive()
            # waits): the rest stays unparsed, not inflated, until the handler catches up.
            limit = self.options.max_queue - len(queue)
            if self._waiter is not None and not queue:
                limit += 1
            limit = max(limit, 0)
        events = conn.receive_data(data, limit)
        out = conn.data_to_send()
        if out:  # pongs, a close echo
            if self._corked is not None:
                self.flush()  # what was queued before goes first, or is lost after a close
            self.transport.write(out)
        heard = 0
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                heard += 1
                waiter = self._waiter
                if waiter is not None and not queue:
                    self._waiter = None
                    if not waiter.done():
                        waiter.set_result(event)  # type: ignore[arg-type]
                        self._delivered = True
                        continue
                if draining and len(queue) >= self.options.max_queue:
                    continue
                queue.append(event)  # type: ignore[arg-type]
            elif kind is Closed:
                code = event.code  # type: ignore[union-attr]
                stats = self._server.stats
                stats.closed(code, sent=False)
                if conn.peer_closed_first:  # echoed
                    stats.closed(code, sent=True)
                self._closed_for_reading(event.code, event.reason)  # type: ignore[union-attr]
            elif kind is Pong and event.payload == self._ping_payload:  # type: ignore[union-attr]
                self._ping_sent = None
        if heard:
            self.messages_in += heard
            if self.options.idle_timeout is not None:
                self._last_message = self.loop.time()
        if conn.unanswered_ping is not None and not self._owing_pong:
            # A ping came while the client is not reading what it is sent: its pong waits
            # for room, and so does everything else the client sends (TCP back-pressure).
            self._owing_pong = True
            self.transport.pause_reading()
        if len(queue) >= self.options.max_queue and not self._reading_paused and not draining:
            self._reading_paused = True
            self.transport.pause_reading()
        if conn.failure is not None:
            self._failure_received()
        elif conn.state is State.CLOSED:
            self._close_transport()

    def _failure_received(self) -> None:
        """The peer broke the protocol. Messages it sent before are answered first (as the
        Autobahn suite's strict mode expects); the close follows once they are handled."""
        failure = self.conn.failure
        assert failure is not None
        if not self._queue and not self._delivered:
            self.fail(*failure)
        elif self._close_handle is None:
            self._close_handle = self.loop.call_later(
                self.options.close_timeout, self.fail, *failure
            )

    def eof_received(self) -> None:
        for event in self.conn.receive_eof():
            if isinstance(event, Closed):
                self._closed_for_reading(event.code, event.reason)

    def connection_lost(self) -> None:
        """The TCP connection has ended (called by its HttpConnection)."""
        self.ended = True
        self.conn.receive_eof()
        code = self.conn.close_code if self.conn.close_sent else None
        if self._disconnect is None:
            self._closed_for_reading(1006 if code is None else code, "")
        for handle in (self._ping_handle, self._close_handle):
            if handle is not None:
                handle.cancel()
        self._drain.wake(WebSocketDisconnect(self._disconnect.code if self._disconnect else 1006))
        self._server.channels.discard(self)
        self._server.stats.channel_ended(
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            dropped=self.dropped,
            high_water=self.high_water,
        )
        callbacks, self.on_lost = self.on_lost, None
        for callback in callbacks or ():
            callback()

    def _closed_for_reading(self, code: int, reason: str) -> None:
        if self._disconnect is None:
            self._disconnect = WebSocketDisconnect(code, reason)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(WebSocketDisconnect(code, reason))

    async def recv(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises WebSocketDisconnect once the connection is closed and no message is left.
        """
        self._delivered = False
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._reading_paused and len(queue) <= self.options.max_queue // 4:
                self._listen_again()
            return message
        disconnect = self._disconnect
        if disconnect is not None:
            if self.conn.failure is not None:
                self.fail(*self.conn.failure)
            raise WebSocketDisconnect(disconnect.code, disconnect.reason)
        if self._waiter is not None:
            raise InvalidState("another coroutine is already waiting in receive()")
        waiter: asyncio.Future[str | bytes] = self.loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None
            # A WebSocketDisconnect set on the waiter has this frame in its traceback: without
            # this, frame, waiter and exception would form a cycle holding the channel.
            del waiter

    # -- sending -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.conn.state is not State.OPEN:
            code = self.conn.close_code or 1006
            raise WebSocketDisconnect(code, "cannot send: the connection is closed")

    async def send_text(self, text: str) -> None:
        """Send a text message; waits while the outbound buffer is over ``write_limit``."""
        if self.conn.state is not State.OPEN:
            self._check_open()
        if self._write_message(self.conn.send_text(text)):
            await self._drain.wait()

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message; waits while the outbound buffer is over ``write_limit``."""
        if self.conn.state is not State.OPEN:
            self._check_open()
        if self._write_message(self.conn.send_binary(data)):
            await self._drain.wait()

    def _write_message(self, frame: bytes) -> bool:
        """Write one message's frame after what was queued before it; whether the writer
        must now wait for the socket to drain."""
        if self._corked is not None:
            self.flush()
        if self._owing_pong:  # the pong to a coalesced ping goes out with this message
            self.transport.write(self._answer_ping())
        self.transport.write(frame)
        self.messages_out += 1
        self.bytes_out += len(frame)
        return self.write_paused

    def send_nowait(self, message: str | bytes, shared: SharedMessage | None = None) -> bool:
        """Queue a message without waiting, under the slow-consumer policy.

        ``shared`` is the message encoded once for many connections: its frame, or its
        compressed frame, is written as it is wherever this connection can take it. Frames
        queued this way during one turn of the event loop are written together, in one
        system call per connection, at the end of that turn. Returns False when the message
        was not queued (closed, dropped or over the limit).
        """
        conn = self.conn
        if conn.state is not _OPEN:
            return False
        corked = self._corked
        # The socket's buffer cannot change before the flush: read it once per turn.
        size = self.transport.get_write_buffer_size() if corked is None else self._corked_size
        if size > self._outbound_limit:
            if self.options.slow_consumer == "drop":
                self.dropped += 1
            else:
                self._server.stats.slow_consumer_closes += 1
                self.fail(1008, "slow consumer: outbound buffer over its limit")
            return False
        if shared is None:
            frame = (
                conn.send_text(message) if isinstance(message, str) else conn.send_binary(message)
            )
        elif conn.deflate is None:
            frame = shared.frame
        else:
            frame = conn.send_shared(shared)
        if self._owing_pong:  # the pong to a coalesced ping goes out with this message
            pong = self._answer_ping()
            self.transport.write(pong)
            size += len(pong)
        if corked is None:
            self._corked = [frame]
            self._server.cork(self)
        else:
            corked.append(frame)
        self._corked_size = size + len(frame)
        return True

    def flush(self) -> None:
        """Write the frames queued by ``send_nowait``."""
        corked = self._corked
        if corked is None:
            return
        self._corked = None
        if self._corked_size > self.high_water:
            self.high_water = self._corked_size
        data = corked[0] if len(corked) == 1 else b"".join(corked)
        self.messages_out += len(corked)  # counted here, once per turn, not per delivery
        self.bytes_out += len(data)
        if not self.transport.is_closing():
            self.transport.write(data)

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame."""
        self._check_open()
        self.flush()
        self.transport.write(self.conn.send_ping(payload))

    def pause_writing(self) -> None:
        """The socket's buffer is over ``write_limit``: sends wait and pings are coalesced."""
        self.write_paused = True
        self.conn.coalesce_pongs = True
        size = self.transport.get_write_buffer_size()
        if size > self.high_water:
            self.high_water = size

    def resume_writing(self) -> None:
        """The socket's buffer drained: answer the coalesced ping, wake waiting sends."""
        self.write_paused = False
        self.conn.coalesce_pongs = False
        if self._owing_pong:
            pong = self._answer_ping()
            if pong and not self.transport.is_closing():
                self.transport.write(pong)
        self._drain.wake()

    def _answer_ping(self) -> bytes:
        """Stop owing a pong and read again; the pong to write (b"" if it may not be sent).

        While the client does not read, pings are coalesced (RFC 6455 section 5.5.3): only
        the latest gets a pong, once there is room or with the next frame, so the pongs
        never grow the outbound buffer past ``write_limit`` plus what one read brought."""
        self._owing_pong = False
        if not self._reading_paused and not self.transport.is_closing():
            self.transport.resume_reading()
        return self.conn.pending_pong()

    # -- closing -----------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (idempotent); receive() raises WebSocketDisconnect after."""
        if self.conn.failure is not None:
            self.fail(*self.conn.failure)
            return
        data = self.conn.send_close(code, reason)
        if not data:
            return
        self._server.stats.closed(code, sent=True)
        self.flush()  # what was sent before the close goes first
        self.transport.write(data)
        self._closed_for_reading(code, reason)
        if self._reading_paused:  # max_queue is full, but the peer's close frame must be read
            self._reading_paused = False
            if not self._owing_pong:
                self.transport.resume_reading()
        self._close_handle = self.loop.call_later(self.options.close_timeout, self.abort)

    def fail(self, code: int, reason: str = "") -> None:
        """Close at once with ``code``: send the close frame and end the TCP connection."""
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        if code == 1008:  # a slow consumer: what it has not taken is dropped
            self._corked = None
            self._corked_size = 0
        else:
            self.flush()
        sent = self.conn.close_sent
        events = self.conn.fail(code, reason)
        if self.conn.close_sent and not sent:
            self._server.stats.closed(code, sent=True)
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)
        for event in events:
            if isinstance(event, Closed):
                self._closed_for_reading(event.code, event.reason)
        self._close_transport()

    def _close_transport(self) -> None:
        """The server closes the TCP connection first (RFC 6455 section 7.1.1)."""
        if not self.transport.is_closing():
            self.transport.close()
            if self._close_handle is not None:
                self._close_handle.cancel()
            self._close_handle = self.loop.call_later(self.options.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake."""
        self.transport.abort()

    async def wait_closed(self) -> None:
        """Return once the TCP connection has ended."""
        if self.ended:
            return
        fut: asyncio.Future[None] = self.loop.create_future()

        def done() -> None:
            if not fut.done():
                fut.set_result(None)

        self.add_lost_callback(done)
        await fut

    def add_lost_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the TCP connection has ended (at once if it has)."""
        if self.ended:
            self.loop.call_soon(callback)
        elif self.on_lost is None:
            self.on_lost = [callback]
        else:
            self.on_lost.append(callback)

    # -- keepalive ---------------------------------------------------------------------------

    def _schedule_keepalive(self, now: float) -> None:
        """Wake ``_keepalive`` at the next deadline: a ping due, the unanswered ping's timeout
        or the idle timeout (these two not while reading is paused for ``max_queue``), or the
        check for an unused compressor."""
        opts = self.options
        deadlines = [self._next_ping] if opts.ping_interval else []
        if self._next_release is not None:
            deadlines.append(self._next_release)
        if not self._reading_paused:
            if self._ping_sent is not None and opts.ping_timeout is not None:
                deadlines.append(self._ping_sent + opts.ping_timeout)
            if opts.idle_timeout is not None:
                deadlines.append(self._last_message + opts.idle_timeout)
        if deadlines:
            self._ping_handle = self.loop.call_later(
                max(0.0, min(deadlines) - now), self._keepalive
            )

    def _keepalive(self) -> None:
        self._ping_handle = None
        if self.conn.state is not State.OPEN:
            return
        opts = self.options
        now = self.loop.time()
        if not self._reading_paused:  # while roost is not reading, the client is not heard
            sent = self._ping_sent
            timeout = opts.ping_timeout
            if sent is not None and timeout is not None and now - sent >= timeout:
                self.fail(1011, "keepalive ping timeout")
                self.abort()
                return
            if opts.idle_timeout is not None and now - self._last_message >= opts.idle_timeout:
                self.close(1001, "idle timeout")
                return
        release = self._next_release
        if release is not None and now >= release:
            deflate = self.conn.deflate
            assert deflate is not None and opts.compression_idle_timeout is not None
            deflate.release_idle()  # drops the compressor if unused since the last check
            self._next_release = now + opts.compression_idle_timeout
        if opts.ping_interval and now >= self._next_ping:
            self._next_ping = now + opts.ping_interval
            if self._ping_sent is None:  # one ping at a time
                self._ping_sent = now
                self._ping_payload = os.urandom(4)  # only a peer that read it can answer it
                self.flush()  # what was queued earlier in this turn goes first
                self.transport.write(self.conn.send_ping(self._ping_payload))
        self._schedule_keepalive(now)

    def _listen_again(self) -> None:
        """Reading resumes after a ``max_queue`` pause: the ping and idle clocks restart,
        since whatever the client sent meanwhile waited in the socket (or, already read,
        unparsed in the protocol's buffer: it is parsed now)."""
        self._reading_paused = False
        if not self._owing_pong:
            self.transport.resume_reading()
        if self.conn.state is not State.OPEN:
            return
        self.data_received(b"")
        if self.conn.state is not State.OPEN:
            return
        now = self.loop.time()
        self._last_message = now
        if self._ping_sent is not None:
            self._ping_sent = now
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        self._schedule_keepalive(now)
