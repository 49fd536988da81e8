"""Listening sockets (plain or TLS), the set of live connections, readiness, draining and
graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from ssl import SSLContext

from roost.protocol.http import HttpRequest
from roost.server.access import access_logger
from roost.server.health import Readiness, health_paths
from roost.server.http import HttpConnection
from roost.server.options import ServerOptions
from roost.server.stats import ServerStats
from roost.server.websocket import WebSocketChannel

logger = logging.getLogger("roost.server")

#: ``handler(request, connection)`` answers one request; for a WebSocket it returns the
#: session to run (an awaitable), which the connection then runs in its own task.
RequestHandler = Callable[[HttpRequest, HttpConnection], Awaitable[Awaitable[None] | None]]


class Server:
    """Serves one app on one event loop.

    ``handler(request, connection)`` is called for every request, in order per connection; it
    answers through ``connection.send_response``, ``start_stream`` or ``upgrade``. Requests
    for the health endpoints (``ServerOptions.liveness_path`` and ``readiness_path``) are
    answered by the server itself and never reach it.

    Readiness is ``"starting"`` until ``set_ready()``, then ``"ready"`` until ``drain()`` or
    ``shutdown()``, then ``"draining"`` for good.
    """

    def __init__(
        self,
        handler: RequestHandler,
        *,
        options: ServerOptions | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        stats: ServerStats | None = None,
    ) -> None:
        self.handler = handler
        self.options = options or ServerOptions()
        #: The server's counters (``roost.server.stats``), read by ``roost.metrics``.
        self.stats = stats or ServerStats()
        #: Whether to time HTTP requests (decided once: metrics are on).
        self.timed = self.options.metrics_path is not None
        self.loop = loop or asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.admitted = 0  # connections counted against max_connections
        self._per_ip: dict[str, int] = {}
        self.channels: set[WebSocketChannel] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.readiness: Readiness = "starting"
        #: request path -> health endpoint kind (see roost.server.health)
        self.health_paths = health_paths(self.options.liveness_path, self.options.readiness_path)
        self.tls = False
        #: Whether to write the access log (``roost.access`` enabled for INFO at startup).
        self.access_log = access_logger.isEnabledFor(logging.INFO)
        self._closing = self.loop.create_future()
        self._corked: list[WebSocketChannel] = []
        self._servers: list[asyncio.Server] = []
        self._closed = self.loop.create_future()

    async def listen(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        backlog: int = 2048,
        ssl: SSLContext | None = None,
    ) -> None:
        """Start accepting connections on ``host:port`` (port 0 picks a free one) or ``sock``.

        ``ssl``: serve TLS (``https://``, ``wss://``) with this context (see
        ``roost.server.tls.server_context``); its handshake is bounded by
        ``handshake_timeout``.
        """
        timeout = self.options.handshake_timeout if ssl is not None else None
        self.tls = self.tls or ssl is not None
        if sock is not None:
            srv = await self.loop.create_server(
                lambda: HttpConnection(self),
                sock=sock,
                backlog=backlog,
                ssl=ssl,
                ssl_handshake_timeout=timeout,
            )
        else:
            srv = await self.loop.create_server(
                lambda: HttpConnection(self),
                host,
                port,
                reuse_port=reuse_port or None,
                backlog=backlog,
                ssl=ssl,
                ssl_handshake_timeout=timeout,
            )
        self._servers.append(srv)

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [s for srv in self._servers for s in (srv.sockets or ())]

    @property
    def port(self) -> int:
        """The port of the first listening socket."""
        return int(self.sockets[0].getsockname()[1])

    def set_ready(self) -> None:
        """The app has started: readiness answers 200 (unless draining already)."""
        if self.readiness == "starting":
            self.readiness = "ready"

    def drain(self) -> None:
        """A shutdown is coming: readiness answers 503 from now on; everything else is
        served as before until ``shutdown()``."""
        self.readiness = "draining"

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; or, over a limit, say why it is refused.

        Counting happens here, when the TCP connection is accepted, so that no burst of
        handshakes can pass a limit while the app awaits something.
        """
        opts = self.options
        if self.admitted >= opts.max_connections:
            self.stats.refusal("max_connections")
            return "too many connections"
        per_ip = opts.max_connections_per_ip
        count = self._per_ip.get(ip, 0)
        if per_ip is not None and count >= per_ip:
            self.stats.refusal("max_connections_per_ip")
            return "too many connections from this address"
        self.admitted += 1
        self._per_ip[ip] = count + 1
        return None

    def release(self, ip: str) -> None:
        """An admitted connection from ``ip`` has ended."""
        self.admitted -= 1
        count = self._per_ip.get(ip, 1) - 1
        if count > 0:
            self._per_ip[ip] = count
        else:
            self._per_ip.pop(ip, None)

    def connections_from(self, ip: str) -> int:
        """Open connections counted for ``ip``."""
        return self._per_ip.get(ip, 0)

    def cork(self, channel: WebSocketChannel) -> None:
        """``channel`` has frames to write: flush it at the end of this turn of the loop."""
        if not self._corked:
            self.loop.call_soon(self._flush)
        self._corked.append(channel)

    def _flush(self) -> None:
        """Write every corked channel's frames: one write per connection per turn."""
        corked, self._corked = self._corked, []
        for channel in corked:
            channel.flush()

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` (a connection answering requests, a WebSocket session, an on_close)
        so that shutdown can wait for it."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait_closed(self) -> None:
        """Return once ``shutdown`` has finished."""
        await asyncio.shield(self._closed)

    async def wait_closing(self) -> None:
        """Return once ``shutdown`` has begun."""
        await asyncio.shield(self._closing)

    async def shutdown(
        self,
        timeout: float | None = None,
        *,
        code: int = 1001,
        reason: str = "server shutting down",
    ) -> None:
        """Graceful shutdown, bounded by ``timeout`` (default ``shutdown_timeout``) seconds.

        Stop accepting; close idle connections; close every WebSocket with ``code`` (1001;
        1012 for a restart); let the requests being handled finish, their responses going
        out with ``Connection: close`` (a handshake finishing now gets 503); wait for the
        sessions and their on_close and for the connections to end. At the deadline, drop
        the connections and cancel the tasks still running.
        """
        if self.closing:
            await self.wait_closed()
            return
        self.closing = True
        self.readiness = "draining"
        self._closing.set_result(None)
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        deadline = self.loop.time() + timeout
        for srv in self._servers:
            srv.close()
        arriving: set[HttpConnection] = set()
        for conn in list(self.connections):
            if conn.finish_arriving_request():
                arriving.add(conn)  # it began before the shutdown: it will be answered
            elif conn.idle:
                conn.close()
        for channel in list(self.channels):
            channel.close(code, reason)
        while (remaining := deadline - self.loop.time()) > 0:
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=remaining)
                continue
            # Requests still arriving; connections on their way out: WebSockets closing,
            # HTTP replies being flushed.
            arriving = {c for c in arriving if c.receiving and not c.closed}
            ending = [c for c in self.connections if c.websocket is not None or c.closing]
            if not ending and not arriving:
                break
            waiters = [asyncio.ensure_future(c.wait_disconnected()) for c in ending]
            waiters += [asyncio.ensure_future(c.wait_progress()) for c in arriving]
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        for srv in self._servers:
            # On Python 3.12+ wait_closed() also waits for connections: bound it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        if not self._closed.done():
            self._closed.set_result(None)
