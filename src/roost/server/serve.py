"""Listening sockets (plain or TLS), the set of live connections, accepting within the
open-file limit, readiness, draining and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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

#: Open files a serving process keeps free beyond its connections: for the event loop, logs,
#: files being sent, broker links, and connections arriving while one accept burst runs.
FD_SPARE = 64
#: On a listening socket the server was given (``--processes N`` share one), how many
#: descriptors before the limit accepting stops, at most: the event loop accepts every
#: connection waiting in the queue at once, and the queue is not this server's to shorten.
#: Limits under 8 times this keep an eighth of their room instead.
ACCEPT_BURST = 256
#: Free descriptors needed before a server that stopped accepting accepts again.
RESUME_ROOM = 16


def open_file_room() -> int | None:
    """How many connections the process's open-file limit (the soft ``RLIMIT_NOFILE``) leaves
    room for: the limit, less the descriptors open now and ``FD_SPARE`` (a quarter of a
    limit under 256). None when there is no limit, or too low a one to share out."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    room = int(soft) - _open_descriptors() - min(FD_SPARE, int(soft) // 4)
    return room if room >= 2 else None  # too few to share out: left as it is


def _open_descriptors() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(directory)) - 1  # less the one listdir itself opened
    return 0


@dataclass(slots=True, eq=False)
class _Listener:
    """What one ``listen`` started: its asyncio servers while accepting; while not, duplicates
    of their sockets (which keep them listening, and what waits in their queues); whether
    the sockets are this server's own (made by ``listen``, not given); their queue length."""

    servers: list[asyncio.Server]
    paused: list[socket.socket]
    backlog: int
    ssl: SSLContext | None
    own: bool
    queue: int = field(default=-1)  # as last set by listen(); -1: the backlog asked for

    def sockets(self) -> list[socket.socket]:
        return [s for srv in self.servers for s in (srv.sockets or ())] or list(self.paused)


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
        self._listeners: list[_Listener] = []
        #: Connections the open-file limit leaves room for (set when listening starts).
        self.fd_room: int | None = None
        self.accepting = True  # False while out of open files (``_fit``)
        self._resuming: asyncio.Task[None] | None = None
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

        The open connections stay within the process's open-file limit (less ``FD_SPARE``):
        when there is no room left, the server stops accepting until some connections end,
        and new ones wait in the listen queue (or go to another process sharing the socket)
        instead of being accepted without a descriptor for them. On a socket made here the
        queue is also kept shorter than the room left; on a given ``sock`` (shared by the
        workers of ``--processes N``) accepting stops ``ACCEPT_BURST`` descriptors early.
        """
        self.tls = self.tls or ssl is not None
        if sock is not None:
            srv = await self._serve(sock, backlog, ssl)
        else:
            srv = await self.loop.create_server(
                lambda: HttpConnection(self),
                host,
                port,
                reuse_port=reuse_port or None,
                backlog=backlog,
                ssl=ssl,
                ssl_handshake_timeout=self._tls_timeout(ssl),
            )
        self._listeners.append(_Listener([srv], [], backlog, ssl, own=sock is None))
        if self.fd_room is None:
            self.fd_room = open_file_room()
        self._fit()

    def _tls_timeout(self, ssl: SSLContext | None) -> float | None:
        return self.options.handshake_timeout if ssl is not None else None

    async def _serve(
        self, sock: socket.socket, backlog: int, ssl: SSLContext | None
    ) -> asyncio.Server:
        return await self.loop.create_server(
            lambda: HttpConnection(self),
            sock=sock,
            backlog=backlog,
            ssl=ssl,
            ssl_handshake_timeout=self._tls_timeout(ssl),
        )

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [sock for listener in self._listeners for sock in listener.sockets()]

    @property
    def port(self) -> int:
        """The port of the first listening socket."""
        return int(self.sockets[0].getsockname()[1])

    # -- open files ----------------------------------------------------------------------------

    def opened(self, conn: HttpConnection) -> None:
        """A TCP connection was accepted (it holds a descriptor until ``ended``)."""
        self.connections.add(conn)
        if self.fd_room is not None:
            self._fit()

    def ended(self, conn: HttpConnection) -> None:
        """A TCP connection has ended."""
        self.connections.discard(conn)
        if self.fd_room is not None:
            self._fit()

    def _fit(self) -> None:
        """Keep accepting within the descriptors left. The event loop accepts every connection
        waiting in a listen queue at once: the queue of a socket of its own is kept shorter
        than the room left, and accepting stops when no room is left; with a given socket,
        whose queue other processes share, it stops ``ACCEPT_BURST`` descriptors early. It
        starts again once ``RESUME_ROOM`` more are free."""
        fd_room = self.fd_room
        if fd_room is None or self.closing:
            return
        room = fd_room - len(self.connections)
        shared = any(not listener.own for listener in self._listeners)
        early = min(ACCEPT_BURST, fd_room // 8) if shared else 1
        if not self.accepting:
            if room >= early + RESUME_ROOM and self._resuming is None:
                self._resuming = self.loop.create_task(self._resume())
            return
        if room <= early:
            self._pause()
            return
        for listener in self._listeners:
            if listener.own:
                _fit_queue(listener, room)

    def _pause(self) -> None:
        self.accepting = False
        logger.warning(
            "stopped accepting: %d connections open, no room left under the open-file limit"
            " (raise it with ulimit -n); accepting again once some end",
            len(self.connections),
        )
        for listener in self._listeners:
            # Duplicates keep the sockets listening (and what waits in their queues) while
            # the servers, which would accept, are closed.
            listener.paused = [
                socket.socket(fileno=os.dup(sock.fileno())) for sock in listener.sockets()
            ]
            servers, listener.servers = listener.servers, []
            for srv in servers:
                srv.close()

    async def _resume(self) -> None:
        try:
            for listener in self._listeners:
                while listener.paused and not self.closing:
                    sock = listener.paused.pop()
                    listener.servers.append(await self._serve(sock, listener.backlog, listener.ssl))
                listener.queue = -1
            if not self.closing:
                logger.info("accepting connections again (%d open)", len(self.connections))
                self.accepting = True
        finally:
            self._resuming = None
        self._fit()

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
        if self._resuming is not None:
            self._resuming.cancel()
        for listener in self._listeners:
            for srv in listener.servers:
                srv.close()
            for sock in listener.paused:
                sock.close()
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
        for srv in [srv for listener in self._listeners for srv in listener.servers]:
            # On Python 3.12+ wait_closed() also waits for connections: bound it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        if not self._closed.done():
            self._closed.set_result(None)


def _fit_queue(listener: _Listener, room: int) -> None:
    """Keep the listen queue of ``listener`` shorter than ``room``: shortened by a quarter
    more than needed, and lengthened once the room is twice as long, so that it changes a
    few times as connections come and go rather than with each one."""
    backlog = listener.backlog
    queue = backlog if listener.queue < 0 else listener.queue
    most = room - 1
    if most < queue:
        queue = most * 3 // 4
    elif queue < backlog and most >= 2 * queue + 16:
        queue = min(most, backlog)
    else:
        return
    listener.queue = -1 if queue >= backlog else queue
    for sock in listener.sockets():
        with contextlib.suppress(OSError):
            _listen(sock, queue)


def _listen(sock: socket.socket, queue: int) -> None:
    """Set the listen queue's length of ``sock`` (through a duplicate: the event loop's
    socket objects do not all offer ``listen``)."""
    with socket.socket(fileno=os.dup(sock.fileno())) as dup:
        dup.listen(queue)
