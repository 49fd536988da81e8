"""One serving process's life: logging, the event loop, and what signals and the parent
process ask for.

Signals, when roost serves in one process (``--processes`` workers differ; see workers.py):

- SIGTERM or SIGINT: graceful shutdown; open WebSockets get close 1001; exit status 0. The
  readiness endpoint answers 503 from that moment; with a drain delay the server goes on
  serving for that long before it closes anything.
- SIGHUP: the same with close 1012 (a restart: a process manager starts roost again).
- A second SIGTERM or SIGINT: exit now, with status 128 + the signal number; connections are
  dropped without a close handshake, and handlers, ``on_close`` and shutdown handlers still
  running do not finish.
- Once roost has stopped serving, SIGTERM, SIGINT and SIGHUP are ignored until the process
  exits, so a late one cannot kill it with the default action while it exits.

A parent roost process (the ``--processes`` supervisor, or ``--reload``) also drives its child
through a control pipe: one byte per command (``STOP``, ``RESTART``, ``EXIT_NOW``), and end of
file when the parent is gone, which the child takes as ``STOP``: nothing roost starts outlives
the process that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from ssl import SSLContext
from typing import Any, Protocol

from roost.hub.hub import Hub
from roost.server.options import ServerOptions
from roost.server.serve import Server

logger = logging.getLogger("roost")


class Servable(Protocol):
    """What a process needs of an app to serve it (``roost.Roost`` is one)."""

    hub: Hub
    server_options: ServerOptions

    async def create_server(self, host: str = ..., port: int = ..., **listen: Any) -> Server:
        """Start serving on the running loop."""
        ...

    async def shutdown(self, *, code: int = ..., reason: str = ...) -> None:
        """Shut down gracefully, closing WebSockets with ``code``."""
        ...


#: The signals that stop a server.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Control-pipe commands: stop gracefully (close 1001), restart (close 1012), exit now.
STOP = b"T"
RESTART = b"R"
EXIT_NOW = b"K"
#: The environment variable through which ``--reload`` hands its child the control pipe.
CONTROL_FD_ENV = "ROOST_CONTROL_FD"
#: Young-generation threshold used when roost runs the process (CPython's default is 700).
GC_THRESHOLD0 = 20_000


def forced_exit_status(signum: int) -> int:
    """The exit status after a second SIGTERM/SIGINT cut a shutdown short: 128 + signal."""
    return 128 + signum


def ignore_stop_signals() -> None:
    """Ignore SIGTERM, SIGINT and SIGHUP from now on: roost has stopped serving and the
    process is on its way out."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def tune_gc() -> None:
    """Make garbage collection cheaper for a long-running server holding many connections.

    Objects alive after startup (modules, routes) are frozen out of collection, and the
    young generation is collected every 20,000 allocations instead of 700: with thousands
    of live connections, CPython's default spends a third of a handshake in the collector.
    Set ``ROOST_GC_TUNING=0`` to keep CPython's defaults.
    """
    if os.environ.get("ROOST_GC_TUNING", "1") == "0":
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, gen1, gen2)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop where uvloop is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def exit_now(status: int, why: str) -> None:
    """Leave the process at once with ``status``, after flushing the logs: open connections
    are dropped by the kernel, nothing else runs."""
    logger.warning("%s: exiting now, dropping open connections (exit status %d)", why, status)
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


class StopRequests:
    """What this process has been asked to do, by signals and by its parent's control pipe.

    The first request starts a graceful shutdown with its close code (1001, or 1012 for a
    restart); later ones do not change the code. A second SIGTERM/SIGINT, or ``EXIT_NOW``
    from the parent, exits at once. Requests from the parent do not count as signals: a
    worker that gets SIGTERM both from its supervisor's pipe and from a process manager
    signalling every process stops gracefully once.
    """

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.code = 1001
        self._stop_signals = 0
        self._on_stop: Callable[[], None] | None = None

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at the first request, in the signal's own callback (at once if
        it came already)."""
        self._on_stop = callback
        if self.requested.is_set():
            callback()

    @property
    def reason(self) -> str:
        """The close reason that goes with ``code``."""
        return "server restarting" if self.code == 1012 else "server shutting down"

    def stop(self, code: int, why: str) -> None:
        """Ask for a graceful shutdown closing WebSockets with ``code``."""
        if self.requested.is_set():
            return
        self.code = code
        logger.info("%s: %s", why, "restarting" if code == 1012 else "shutting down")
        self.requested.set()
        if self._on_stop is not None:
            self._on_stop()

    def stop_signal(self, signum: int) -> None:
        """SIGTERM or SIGINT: the first stops gracefully, the second exits now."""
        self._stop_signals += 1
        name = signal.Signals(signum).name
        if self._stop_signals == 1:
            self.stop(1001, name)
        else:
            exit_now(forced_exit_status(signum), f"second {name} during shutdown")

    def control(self, fd: int) -> None:
        """Read the parent's commands from the control pipe ``fd``."""
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            self.stop(1001, "the parent process is gone")
            return
        if EXIT_NOW in data:
            exit_now(forced_exit_status(signal.SIGTERM), "asked by the parent process")
        if RESTART in data:
            self.stop(1012, "asked by the parent process")
        if STOP in data:
            self.stop(1001, "asked by the parent process")


class ListenError(Exception):
    """The listening socket could not be opened (the message says where and why)."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        super().__init__(f"cannot listen on {host}:{port}: {why}")


async def serve(
    app: Servable,
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    control: int | None = None,
    hangup_restarts: bool = True,
    ssl: SSLContext | None = None,
    drain_delay: float = 0.0,
) -> None:
    """Serve ``app`` until asked to stop (see the module docstring), then shut down gracefully.

    ``sock``: an already listening socket to serve on (a worker's); ``control``: the read end
    of the parent's control pipe; ``hangup_restarts``: whether SIGHUP restarts this process
    (False in ``--processes`` workers, where SIGHUP is the supervisor's); ``ssl``: serve TLS
    with this context; ``drain_delay``: seconds between the stop request (when readiness
    turns to 503) and the shutdown, during which everything else is served as before.
    """
    loop = asyncio.get_running_loop()
    requests = StopRequests()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, requests.stop_signal, sig)
    if hangup_restarts:
        loop.add_signal_handler(signal.SIGHUP, requests.stop, 1012, "SIGHUP")
    if control is not None:
        os.set_blocking(control, False)
        loop.add_reader(control, requests.control, control)
    listen: dict[str, Any] = {} if sock is None else {"sock": sock}
    if ssl is not None:
        listen["ssl"] = ssl
    try:
        server = await app.create_server(host, port, **listen)
    except OSError as exc:
        raise ListenError(host, port, exc) from exc
    requests.on_stop(server.drain)
    tune_gc()
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    scheme = "https" if ssl is not None else "http"
    logger.info("roost listening on %s://%s:%d (pid %d)", scheme, shown, server.port, os.getpid())
    await requests.requested.wait()
    if drain_delay > 0:
        logger.info("draining: not ready; closing connections in %g s", drain_delay)
        await asyncio.sleep(drain_delay)
    await app.shutdown(code=requests.code, reason=requests.reason)
    if control is not None:
        loop.remove_reader(control)


def control_fd_from_env() -> int | None:
    """The control pipe a ``--reload`` parent handed down, if any (removed from the
    environment, so the app's own subprocesses do not see it)."""
    raw = os.environ.pop(CONTROL_FD_ENV, "")
    if not raw:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError):
        logger.warning("ignoring %s=%r: not an open file descriptor", CONTROL_FD_ENV, raw)
        return None
    return fd
