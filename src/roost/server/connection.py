"""The I/O glue: one asyncio.Protocol per TCP connection, HTTP/1.1 first, then maybe WebSocket.

This module moves bytes between the socket and roost.protocol, and owns the timers (handshake,
keep-alive, ping, idle, close) and flow control. Routing and handlers live in the app layer,
which receives each request through the server's ``handler`` callback.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from roost.protocol.connection import State, WebSocketConnection
from roost.protocol.deflate import PerMessageDeflate
from roost.protocol.errors import (
    ClientDisconnected,
    HttpError,
    InvalidState,
    WebSocketDisconnect,
)
from roost.protocol.events import Closed, Pong
from roost.protocol.http import (
    HttpRequest,
    RequestParser,
    body_allowed,
    encode_chunk,
    encode_response,
    encode_response_head,
)
from roost.server.options import WebSocketOptions

if TYPE_CHECKING:
    from roost.server.serve import Server

logger = logging.getLogger("roost.server")

_MAX_PIPELINED = 16
_OPEN = State.OPEN


def settle(waiter: asyncio.Future[None] | None, exc: Exception | None) -> None:
    """Wake whoever waits on ``waiter`` (for the socket to drain), with ``exc`` if given."""
    if waiter is not None and not waiter.done():
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)
            waiter.exception()  # mark retrieved: nobody may be waiting any more


class HttpConnection(asyncio.Protocol):
    """One TCP connection: parses requests, hands each to the app in order, writes replies."""

    __slots__ = (
        "_abort_timer",
        "_admitted",
        "_disconnected",
        "_drain_waiter",
        "_early",
        "_head_request",
        "_keep_alive",
        "_parser",
        "_pending",
        "_refusal",
        "_response_started",
        "_stream_body",
        "_stream_remaining",
        "_task",
        "_timer",
        "_upgrading",
        "_write_paused",
        "client",
        "closed",
        "loop",
        "server",
        "transport",
        "websocket",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        opts = server.options
        self._parser: RequestParser | None = RequestParser(
            max_header_size=opts.max_header_size,
            max_header_count=opts.max_header_count,
            max_body_size=opts.max_body_size,
        )
        self._pending: deque[HttpRequest] = deque()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._upgrading = False
        self._early = bytearray()
        self._keep_alive = True
        self._response_started = False
        self._head_request = False  # the request being answered is a HEAD
        self._stream_body = False  # the stream being written carries a body
        self._stream_remaining: int | None = None  # its bytes still owed, when its length is set
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.websocket: WebSocketChannel | None = None
        self.closed = False
        self._disconnected: asyncio.Future[None] | None = None
        self._admitted = False
        self._refusal: str | None = None  # over a connection limit: the 503's reason

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self.server.connections.add(self)
        refusal = self.server.admit(self.client[0])
        if refusal is not None:
            self._refuse(refusal)
            return
        self._admitted = True
        self._timer = self.loop.call_later(self.server.options.handshake_timeout, self._timed_out)

    #: How long a connection over a limit may take to send its request before it is closed.
    REFUSAL_GRACE = 1.0

    def _refuse(self, reason: str) -> None:
        """The server is at a connection limit: answer the request head with 503 as soon as it
        has arrived (within ``REFUSAL_GRACE`` seconds) and close. Nothing is parsed; the
        head is only looked for, so a refused connection costs almost nothing."""
        self._refusal = reason
        self._parser = None
        self._keep_alive = False
        self._timer = self.loop.call_later(self.REFUSAL_GRACE, self._send_refusal)

    def _refusing(self, data: bytes) -> None:
        if self._response_started:
            return  # answered: what follows is dropped
        self._early += data
        if b"\r\n\r\n" in self._early or len(self._early) > self.server.options.max_header_size:
            self._send_refusal()

    def _send_refusal(self) -> None:
        self._cancel_timer()
        if self._response_started or self.transport is None or self.closed:
            return
        self._response_started = True
        self._early = bytearray()
        self.transport.write(
            encode_response(
                503,
                [("content-type", "text/plain; charset=utf-8"), ("retry-after", "1")],
                (self._refusal or "too many connections").encode("utf-8"),
                keep_alive=False,
            )
        )
        self.close()

    def data_received(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.data_received(data)
            return
        if self._refusal is not None:
            self._refusing(data)
            return
        if self._upgrading:
            self._early += data
            if len(self._early) > self.server.options.max_header_size:
                self.abort()
            return
        if self._parser is None:
            return
        try:
            requests = self._parser.feed(data)
        except HttpError as exc:
            self._reject(exc.status, exc.reason)
            return
        if not requests:
            return
        self._cancel_timer()
        for request in requests:
            self._pending.append(request)
            if request.upgrade:
                self._upgrading = True
                self._early += request.trailing
                break
        if len(self._pending) > _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
        if self._task is None:
            self._task = self.loop.create_task(self._process())
            self.server.track(self._task)  # graceful shutdown waits for the response

    def eof_received(self) -> bool | None:
        if self.websocket is not None:
            self.websocket.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self.server.connections.discard(self)
        if self._admitted:
            self._admitted = False
            self.server.release(self.client[0])
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        self._wake_drain(ClientDisconnected("the client disconnected"))
        if self.websocket is not None:
            self.websocket.connection_lost()
            self.websocket = None  # the channel points back here: no cycle is left behind

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.websocket is not None:
            self.websocket.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain(None)
        if self.websocket is not None:
            self.websocket.resume_writing()

    # -- HTTP --------------------------------------------------------------------------------

    async def _process(self) -> None:
        try:
            while self._pending and not self.closed:
                request = self._pending.popleft()
                if self.transport is not None and len(self._pending) < _MAX_PIPELINED // 2:
                    self.transport.resume_reading()
                self._keep_alive = request.keep_alive and not request.upgrade
                self._response_started = False
                self._head_request = request.method == "HEAD"
                if self.server.closing:
                    self._keep_alive = False
                    self.send_response(503, [("content-type", "text/plain")], b"shutting down")
                else:
                    session = await self._dispatch(request)
                    if session is not None:  # the connection is a WebSocket now
                        await session
                        return
                if self.websocket is not None or self.closed:
                    return
                if not self.keep_alive or request.upgrade:
                    self.close()
                    return
            if not self.closed and not self._pending:
                self._timer = self.loop.call_later(
                    self.server.options.keep_alive_timeout, self._timed_out
                )
        finally:
            self._task = None

    async def _dispatch(self, request: HttpRequest) -> Awaitable[None] | None:
        """Run the app's handler; return what it returned to run next (a WebSocket session),
        so that the session does not keep this frame alive."""
        try:
            return await self.server.handler(request, self)
        except ClientDisconnected:
            self.close()
        except Exception:
            logger.exception("error while handling %s %s", request.method, request.path)
            if not self._response_started and not self.closed:
                self._keep_alive = False
                self.send_response(500, [("content-type", "text/plain")], b"Internal Server Error")
            else:
                self.abort()
        else:
            if not self._response_started and self.websocket is None and not self.closed:
                logger.error("handler for %s %s wrote no response", request.method, request.path)
                self._keep_alive = False
                self.send_response(500, [("content-type", "text/plain")], b"Internal Server Error")
        return None

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse, then close: the stream can't be trusted."""
        if self.transport is None or self.closed:
            return
        self._keep_alive = False
        self.transport.write(
            encode_response(
                status,
                [("content-type", "text/plain; charset=utf-8")],
                reason.encode("utf-8"),
                keep_alive=False,
            )
        )
        self.close()

    def _timed_out(self) -> None:
        self._timer = None
        if self.websocket is not None or self.closed:
            return
        if self._parser is not None and self._parser.in_progress and not self._response_started:
            self._reject(408, "request timeout")
        elif self._task is None:
            self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the current response."""
        return self._keep_alive and not self.server.closing

    def send_response(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        include_body: bool = True,
    ) -> None:
        """Write a whole response to the current request.

        The body is left out for HEAD (as with ``include_body=False``), 204 and 304. Raises
        InvalidResponse, with nothing written, for a bad status or header (see
        ``roost.protocol.http.header_line``).
        """
        if self.closed or self.transport is None:
            return
        if self._response_started:
            raise InvalidState("a response was already sent for this request")
        keep_alive = self.keep_alive
        data = encode_response(
            status,
            headers,
            body,
            keep_alive=keep_alive,
            include_body=include_body and not self._head_request,
        )
        self._response_started = True
        self._keep_alive = keep_alive
        self.transport.write(data)

    def start_stream(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        *,
        content_length: int | None = None,
        head_only: bool = False,
    ) -> None:
        """Write the head of a streamed response; follow with ``write_chunk`` and ``end_stream``.

        The body is chunked unless ``content_length`` (bytes) is given. For HEAD (as with
        ``head_only``), 204 and 304 only the head is sent: ``stream_has_body`` is then False
        and ``write_chunk``/``end_stream`` write nothing. Raises InvalidResponse, with nothing
        written, for a bad status or header.
        """
        if self.closed or self.transport is None:
            raise ClientDisconnected("the client disconnected")
        if self._response_started:
            raise InvalidState("a response was already sent for this request")
        keep_alive = self.keep_alive
        head = encode_response_head(
            status, headers, content_length=content_length, keep_alive=keep_alive
        )
        self._response_started = True
        self._keep_alive = keep_alive
        self._stream_body = not (head_only or self._head_request) and body_allowed(status)
        self._stream_remaining = content_length
        self.transport.write(head)

    @property
    def stream_has_body(self) -> bool:
        """Whether the stream begun by ``start_stream`` carries a body (not for HEAD, 204, 304)."""
        return self._stream_body

    async def write_chunk(self, data: bytes) -> None:
        """Write the next piece of a streamed body, waiting while the client is slow to read.

        Raises InvalidState (and drops the connection) past the stream's ``content_length``.
        """
        if not data or not self._stream_body:
            return
        if self.closed or self.transport is None:
            raise ClientDisconnected("the client disconnected")
        remaining = self._stream_remaining
        if remaining is None:
            self.transport.write(encode_chunk(data))
        elif len(data) > remaining:
            self.abort()
            raise InvalidState("the streamed body is longer than its content-length")
        else:
            self._stream_remaining = remaining - len(data)
            self.transport.write(data)
        if self._write_paused:
            await self._drain()

    def end_stream(self) -> None:
        """Finish a streamed body.

        Raises InvalidState (and drops the connection) when the body is shorter than its
        ``content_length``: the client must not take it for the whole.
        """
        if self.closed or self.transport is None or not self._stream_body:
            return
        self._stream_body = False
        remaining = self._stream_remaining
        if remaining is None:
            self.transport.write(b"0\r\n\r\n")
        elif remaining:
            self.abort()
            raise InvalidState(f"the streamed body ended {remaining} bytes short of its length")

    @property
    def idle(self) -> bool:
        """Whether the connection waits for a request: nothing is being received or answered,
        and it is not a WebSocket."""
        return (
            self.websocket is None
            and self._task is None
            and not (self._parser is not None and self._parser.in_progress)
        )

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or closed."""
        return self.closed or self.transport is None or self.transport.is_closing()

    @property
    def receiving(self) -> bool:
        """Whether part of a request has arrived but not all of it."""
        return self._parser is not None and self._parser.in_progress

    async def wait_disconnected(self) -> None:
        """Return once the client has closed the connection."""
        if self.closed:
            return
        if self._disconnected is None:
            self._disconnected = self.loop.create_future()
        await asyncio.shield(self._disconnected)

    async def _drain(self) -> None:
        if self.closed:
            raise ClientDisconnected("the client disconnected")
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = self.loop.create_future()
        await self._drain_waiter

    def _wake_drain(self, exc: Exception | None) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        settle(waiter, exc)

    def close(self) -> None:
        """Close after what was written is flushed; abort if it is not flushed in time."""
        if self.transport is not None and not self.closed:
            self.transport.close()
            if self._abort_timer is None:
                self._abort_timer = self.loop.call_later(
                    self.server.options.keep_alive_timeout, self.abort
                )

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- WebSocket ---------------------------------------------------------------------------

    def upgrade(
        self,
        response: bytes,
        *,
        options: WebSocketOptions,
        deflate: PerMessageDeflate | None,
    ) -> WebSocketChannel:
        """Send the 101 response and switch this connection to the WebSocket protocol."""
        if self.closed or self.transport is None:
            raise ClientDisconnected("the client disconnected during the handshake")
        self._response_started = True
        self._cancel_timer()
        self._parser = None  # HTTP is over on this connection
        self.transport.write(response)
        channel = WebSocketChannel(self, self.transport, options, deflate)
        self.websocket = channel
        self.server.channels.add(channel)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            channel.data_received(early)
        return channel


class WebSocketChannel:
    """A WebSocket connection's I/O: queues received messages, writes frames, runs its timers."""

    __slots__ = (
        "_close_handle",
        "_corked",
        "_corked_size",
        "_delivered",
        "_disconnect",
        "_drain_waiter",
        "_last_message",
        "_next_ping",
        "_outbound_limit",
        "_owing_pong",
        "_ping_handle",
        "_ping_payload",
        "_ping_sent",
        "_queue",
        "_reading_paused",
        "_server",
        "_waiter",
        "client",
        "conn",
        "dropped",
        "http",
        "loop",
        "on_lost",
        "options",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        http: HttpConnection,
        transport: asyncio.Transport,
        options: WebSocketOptions,
        deflate: PerMessageDeflate | None,
    ) -> None:
        self.http = http
        self.loop = http.loop
        self.transport = transport
        self.client = http.client
        self.options = options
        self.conn = WebSocketConnection(
            max_message_size=options.max_message_size, deflate=deflate, defer_failure=True
        )
        self._queue: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[str | bytes] | None = None
        self._reading_paused = False
        self._disconnect: WebSocketDisconnect | None = None
        self._delivered = False  # a message went to a waiter that has not asked again yet
        self._corked: list[bytes] | None = None  # frames queued by send_nowait, not written yet
        self._corked_size = 0  # while corked: the socket's buffer plus the corked frames
        self._server = http.server
        self._outbound_limit = options.max_outbound_buffer
        self.write_paused = http._write_paused
        self.conn.coalesce_pongs = self.write_paused
        self._owing_pong = False  # reading waits until the pong to a coalesced ping is written
        self._drain_waiter: asyncio.Future[None] | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_sent: float | None = None  # when the unanswered keepalive ping was sent
        self._ping_payload = b""
        now = self.loop.time()
        self._last_message = now  # when the last whole message arrived (or reading resumed)
        self._next_ping = now + (options.ping_interval or 0.0)
        self.dropped = 0
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
        events = conn.receive_data(data)
        out = conn.data_to_send()
        if out:  # pongs, a close echo
            if self._corked is not None:
                self.flush()  # what was queued before goes first, or is lost after a close
            self.transport.write(out)
        queue = self._queue
        heard = False
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                heard = True
                waiter = self._waiter
                if waiter is not None and not queue:
                    self._waiter = None
                    if not waiter.done():
                        waiter.set_result(event)  # type: ignore[arg-type]
                        self._delivered = True
                        continue
                queue.append(event)  # type: ignore[arg-type]
            elif kind is Closed:
                self._closed_for_reading(event.code, event.reason)  # type: ignore[union-attr]
            elif kind is Pong and event.payload == self._ping_payload:  # type: ignore[union-attr]
                self._ping_sent = None
        if heard and self.options.idle_timeout is not None:
            self._last_message = self.loop.time()
        if conn.unanswered_ping is not None and not self._owing_pong:
            # A ping came while the client is not reading what it is sent: its pong waits
            # for room, and so does everything else the client sends (TCP back-pressure).
            self._owing_pong = True
            self.transport.pause_reading()
        if len(queue) >= self.options.max_queue and not self._reading_paused:
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
        self.conn.receive_eof()
        code = self.conn.close_code if self.conn.close_sent else None
        if self._disconnect is None:
            self._closed_for_reading(1006 if code is None else code, "")
        for handle in (self._ping_handle, self._close_handle):
            if handle is not None:
                handle.cancel()
        self._wake_drain(WebSocketDisconnect(self._disconnect.code if self._disconnect else 1006))
        self.http.server.channels.discard(self)
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
        if self._corked is not None:
            self.flush()
        if self._owing_pong:  # the pong to a coalesced ping goes out with this message
            self.transport.write(self._answer_ping())
        self.transport.write(self.conn.send_text(text))
        if self.write_paused:
            await self._drain()

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message; waits while the outbound buffer is over ``write_limit``."""
        if self.conn.state is not State.OPEN:
            self._check_open()
        if self._corked is not None:
            self.flush()
        if self._owing_pong:  # the pong to a coalesced ping goes out with this message
            self.transport.write(self._answer_ping())
        self.transport.write(self.conn.send_binary(data))
        if self.write_paused:
            await self._drain()

    def send_nowait(self, message: str | bytes, frame: bytes | None = None) -> bool:
        """Queue a message without waiting, under the slow-consumer policy.

        ``frame`` is the message already encoded, uncompressed, to share across connections.
        Frames queued this way during one turn of the event loop are written together, in one
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
                self.fail(1008, "slow consumer: outbound buffer over its limit")
            return False
        if frame is None or conn.deflate is not None:
            frame = (
                conn.send_text(message) if isinstance(message, str) else conn.send_binary(message)
            )
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
        if not self.transport.is_closing():
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame."""
        self._check_open()
        self.flush()
        self.transport.write(self.conn.send_ping(payload))

    def pause_writing(self) -> None:
        """The socket's buffer is over ``write_limit``: sends wait and pings are coalesced."""
        self.write_paused = True
        self.conn.coalesce_pongs = True

    def resume_writing(self) -> None:
        """The socket's buffer drained: answer the coalesced ping, wake waiting sends."""
        self.write_paused = False
        self.conn.coalesce_pongs = False
        if self._owing_pong:
            pong = self._answer_ping()
            if pong and not self.transport.is_closing():
                self.transport.write(pong)
        self._wake_drain(None)

    def _answer_ping(self) -> bytes:
        """Stop owing a pong and read again; the pong to write (b"" if it may not be sent).

        While the client does not read, pings are coalesced (RFC 6455 section 5.5.3): only
        the latest gets a pong, once there is room or with the next frame, so the pongs
        never grow the outbound buffer past ``write_limit`` plus what one read brought."""
        self._owing_pong = False
        if not self._reading_paused and not self.transport.is_closing():
            self.transport.resume_reading()
        return self.conn.pending_pong()

    async def _drain(self) -> None:
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = self.loop.create_future()
        await self._drain_waiter

    def _wake_drain(self, exc: Exception | None) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        settle(waiter, exc)

    # -- closing -----------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (idempotent); receive() raises WebSocketDisconnect after."""
        if self.conn.failure is not None:
            self.fail(*self.conn.failure)
            return
        data = self.conn.send_close(code, reason)
        if not data:
            return
        self.flush()  # what was sent before the close goes first
        self.transport.write(data)
        self._closed_for_reading(code, reason)
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
        events = self.conn.fail(code, reason)
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
        if self.http.closed:
            return
        fut: asyncio.Future[None] = self.loop.create_future()

        def done() -> None:
            if not fut.done():
                fut.set_result(None)

        self.add_lost_callback(done)
        await fut

    def add_lost_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the TCP connection has ended (at once if it has)."""
        if self.http.closed:
            self.loop.call_soon(callback)
        elif self.on_lost is None:
            self.on_lost = [callback]
        else:
            self.on_lost.append(callback)

    # -- keepalive ---------------------------------------------------------------------------

    def _schedule_keepalive(self, now: float) -> None:
        """Wake ``_keepalive`` at the next deadline: a ping due, the unanswered ping's timeout
        or the idle timeout (these two not while reading is paused for ``max_queue``)."""
        opts = self.options
        deadlines = [self._next_ping] if opts.ping_interval else []
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
        since whatever the client sent meanwhile waited in the socket."""
        self._reading_paused = False
        if not self._owing_pong:
            self.transport.resume_reading()
        if self.conn.state is not State.OPEN:
            return
        now = self.loop.time()
        self._last_message = now
        if self._ping_sent is not None:
            self._ping_sent = now
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        self._schedule_keepalive(now)
