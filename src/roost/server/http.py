"""HTTP/1.1 on one TCP connection: one asyncio.Protocol per connection parses requests (with
roost.protocol), hands each to the app in order through the server's handler, writes the
replies, keeps the connection alive, and switches it to WebSocket on an accepted upgrade.

It owns the HTTP timers (handshake, keep-alive), the connection-limit refusal, the health
endpoints (answered here, before the app) and the access log. Routing and handlers live in
the app layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

from roost.protocol.deflate import PerMessageDeflate
from roost.protocol.errors import ClientDisconnected, HttpError, InvalidState
from roost.protocol.http import (
    HttpRequest,
    RequestParser,
    body_allowed,
    encode_chunk,
    encode_response,
    encode_response_head,
)
from roost.server.access import log_access
from roost.server.flow import Drain
from roost.server.health import health_response
from roost.server.options import WebSocketOptions
from roost.server.websocket import WebSocketChannel

if TYPE_CHECKING:
    from roost.server.serve import Server

__all__ = ["HttpConnection"]

logger = logging.getLogger("roost.server")

_MAX_PIPELINED = 16
#: The route label of a request no route matched (its raw path would make labels unbounded).
UNMATCHED = "<unmatched>"


class HttpConnection(asyncio.Protocol):
    """One TCP connection: parses requests, hands each to the app in order, writes replies."""

    __slots__ = (
        "_abort_timer",
        "_admitted",
        "_disconnected",
        "_drain",
        "_early",
        "_finishing",
        "_head_request",
        "_keep_alive",
        "_parser",
        "_pending",
        "_progress",
        "_refusal",
        "_response_started",
        "_sent",
        "_status",
        "_stream_body",
        "_stream_remaining",
        "_task",
        "_timer",
        "_upgrading",
        "_write_paused",
        "client",
        "closed",
        "loop",
        "route",
        "server",
        "transport",
        "websocket",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self._finishing = False  # a request was arriving when shutdown began: answer it
        self._progress: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        opts = server.options
        self._parser: RequestParser | None = RequestParser(
            max_header_size=opts.max_header_size,
            max_header_count=opts.max_header_count,
            max_body_size=opts.max_body_size,
        )
        self._pending: deque[HttpRequest] | None = deque()  # None once upgraded
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
        self._drain = Drain(self.loop)
        self.websocket: WebSocketChannel | None = None
        self.closed = False
        self._disconnected: asyncio.Future[None] | None = None
        self._admitted = False
        self._refusal: str | None = None  # over a connection limit: the 503's reason
        self._status = 0  # the status of the response to the current request (access log)
        self._sent = 0  # the bytes of its body written so far
        #: The route template of the current request, for the metrics: set by the app's
        #: handler (None: no route matched; "": a WebSocket handshake, counted apart).
        self.route: str | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self.server.opened(self)
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
        body = (self._refusal or "too many connections").encode("utf-8")
        self.transport.write(
            encode_response(
                503,
                [("content-type", "text/plain; charset=utf-8"), ("retry-after", "1")],
                body,
                keep_alive=False,
            )
        )
        if self.server.access_log:
            log_access(self.client[0], None, "", "", 503, len(body))
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
        pending = self._pending
        assert pending is not None  # dropped on an upgrade, after which nothing is parsed
        for request in requests:
            pending.append(request)
            if request.upgrade:
                self._upgrading = True
                self._early += request.trailing
                break
        if len(pending) > _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
        if self._task is None:
            self._task = self.loop.create_task(self._process())
            self.server.track(self._task)  # graceful shutdown waits for the response
            self._made_progress()

    def eof_received(self) -> bool | None:
        if self.websocket is not None:
            self.websocket.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._made_progress()
        self._cancel_timer()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self.server.ended(self)
        if self._admitted:
            self._admitted = False
            self.server.release(self.client[0])
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        self._drain.wake(ClientDisconnected("the client disconnected"))
        if self.websocket is not None:
            self.websocket.connection_lost()
            self.websocket = None  # the channel points back here: no cycle is left behind

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.websocket is not None:
            self.websocket.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._drain.wake()
        if self.websocket is not None:
            self.websocket.resume_writing()

    # -- HTTP --------------------------------------------------------------------------------

    async def _process(self) -> None:
        try:
            while self._pending and not self.closing:  # no local: it would outlive an upgrade
                request = self._pending.popleft()
                if self.transport is not None and len(self._pending) < _MAX_PIPELINED // 2:
                    self.transport.resume_reading()
                self._keep_alive = request.keep_alive and not request.upgrade
                self._response_started = False
                self._head_request = request.method == "HEAD"
                session = None
                timed = self.server.timed
                if timed:
                    self.route = None
                    started = time.perf_counter()
                health = self.server.health_paths.get(request.path)
                if health is not None:  # before the app: no route, hook or middleware
                    self._finishing = False
                    self.send_response(
                        *health_response(health, request.method, self.server.readiness)
                    )
                elif self.server.closing and not self._finishing:
                    self._keep_alive = False
                    self.send_response(503, [("content-type", "text/plain")], b"shutting down")
                else:
                    self._finishing = False  # only the request that was arriving
                    session = await self._dispatch(request)
                if self.server.access_log and self._response_started:
                    self._log_access(request)
                if timed and self._response_started and self.route != "":
                    self.server.stats.http_request(
                        self.route or (request.path if health is not None else UNMATCHED),
                        request.method,
                        self._status,
                        time.perf_counter() - started,
                    )
                if session is not None:  # the connection is a WebSocket now
                    await session
                    return
                if self.websocket is not None or self.closing:
                    return  # no request runs on a connection that is going
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
            session = await self.server.handler(request, self)
        except ClientDisconnected:
            self.close()
            return None
        except Exception:
            logger.exception("error while handling %s %r", request.method, request.path)
            if not self._response_started and not self.closed:
                self._keep_alive = False
                self.send_response(500, [("content-type", "text/plain")], b"Internal Server Error")
            else:
                self.abort()
            return None
        if not self._response_started and self.websocket is None and not self.closed:
            logger.error("handler for %s %r wrote no response", request.method, request.path)
            self._keep_alive = False
            self.send_response(500, [("content-type", "text/plain")], b"Internal Server Error")
            return None
        if self._stream_body and not self.closed:
            # The body is unfinished: the next response would be read as part of it.
            logger.error("handler for %s %r did not end its stream", request.method, request.path)
            self._stream_body = False
            self.abort()
            return None
        return session

    def _log_access(self, request: HttpRequest) -> None:
        log_access(
            self.client[0],
            request.method,
            request.target,
            request.http_version,
            self._status,
            self._sent if body_allowed(self._status) else 0,
        )

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse, then close: the stream can't be trusted."""
        if self.transport is None or self.closed:
            return
        self._keep_alive = False
        body = reason.encode("utf-8")
        self.transport.write(
            encode_response(
                status, [("content-type", "text/plain; charset=utf-8")], body, keep_alive=False
            )
        )
        if self.server.access_log:
            log_access(self.client[0], None, "", "", status, len(body))
        self.close()

    def _timed_out(self) -> None:
        """The handshake or keep-alive timer ran out with no request being answered: a
        request begun but not finished gets 408 (the first or a later one alike); an idle
        connection is closed."""
        self._timer = None
        if self.websocket is not None or self.closed or self._task is not None:
            return
        if self._parser is not None and self._parser.in_progress:
            self._reject(408, "request timeout")
        else:
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
        include_body = include_body and not self._head_request
        data = encode_response(
            status, headers, body, keep_alive=keep_alive, include_body=include_body
        )
        self._response_started = True
        self._keep_alive = keep_alive
        self._status = status
        self._sent = len(body) if include_body else 0
        self.transport.write(data)

    def start_stream(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        *,
        content_length: int | None = None,
        head_only: bool = False,
    ) -> None:
        """Write the head of a streamed response; follow with ``write_chunk`` and ``end_stream``
        (a handler that returns before ``end_stream`` has its connection dropped).

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
        self._status = status
        self._sent = 0
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
        self._sent += len(data)
        if remaining is None:
            self.transport.write(encode_chunk(data))
        elif len(data) > remaining:
            self.abort()
            raise InvalidState("the streamed body is longer than its content-length")
        else:
            self._stream_remaining = remaining - len(data)
            self.transport.write(data)
        if self._write_paused:
            if self.closed:
                raise ClientDisconnected("the client disconnected")
            await self._drain.wait()

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

    def finish_arriving_request(self) -> bool:
        """Shutdown has begun: the request that is arriving now (if one is) will be handled
        once it is complete, and answered with ``Connection: close``. Whether one is."""
        self._finishing = self.receiving
        return self._finishing

    async def wait_progress(self) -> None:
        """Return once a request starts being handled or the connection ends."""
        if self.closed or self._task is not None:
            return
        if self._progress is None or self._progress.done():
            self._progress = self.loop.create_future()
        await asyncio.shield(self._progress)

    def _made_progress(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None and not progress.done():
            progress.set_result(None)

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
        self._status = 101
        self._sent = 0
        self._cancel_timer()
        self._parser = None  # HTTP is over on this connection
        self._pending = None  # the upgrade was the last request: free what held requests
        self.transport.write(response)
        channel = WebSocketChannel(
            self.server,
            self.transport,
            options,
            deflate,
            client=self.client,
            write_paused=self._write_paused,
        )
        self.websocket = channel
        self.server.channels.add(channel)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            channel.data_received(early)
        return channel
