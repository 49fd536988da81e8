"""Running an app from the command line: settings, the event loop, signals."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.app import Roost

logger = logging.getLogger("roost")


def parse_flags(argv: list[str]) -> argparse.Namespace:
    """The server flags among ``argv``; other arguments are left to the app."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--broker")
    parser.add_argument("--log-level", dest="log_level")
    flags, _ = parser.parse_known_args(argv)
    return flags


@dataclass(frozen=True)
class Settings:
    """Where and how to serve, once code, environment and flags are merged."""

    host: str
    port: int
    log_level: str
    processes: int
    broker: str | None


def settings(host: str, port: int, log_level: str, argv: list[str], processes: int = 1) -> Settings:
    """Code defaults, overridden by ROOST_HOST/ROOST_PORT/ROOST_LOG_LEVEL/ROOST_PROCESSES/
    ROOST_BROKER, then by the flags."""
    env = os.environ
    flags = parse_flags(argv)
    merged = Settings(
        host=flags.host or env.get("ROOST_HOST", host),
        port=flags.port if flags.port is not None else int(env.get("ROOST_PORT", port)),
        log_level=(flags.log_level or env.get("ROOST_LOG_LEVEL", log_level)).upper(),
        processes=flags.processes or int(env.get("ROOST_PROCESSES", processes)),
        broker=flags.broker or env.get("ROOST_BROKER"),
    )
    if merged.processes < 1:
        raise SystemExit("roost: --processes must be at least 1")
    return merged


#: Young-generation threshold used when roost runs the process (CPython's default is 700).
GC_THRESHOLD0 = 20_000


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


async def serve(app: Roost, host: str, port: int, sock: socket.socket | None = None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (close 1001) or SIGHUP (a restart: close 1012),
    then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    codes: list[int] = []

    def request_stop(code: int) -> None:
        codes.append(code)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, 1001)
    loop.add_signal_handler(signal.SIGHUP, request_stop, 1012)
    server = await (
        app.create_server(host, port) if sock is None else app.create_server(host, port, sock=sock)
    )
    tune_gc()
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    logger.info("roost listening on http://%s:%d (pid %d)", shown, server.port, os.getpid())
    await stop.wait()
    code = codes[0]
    logger.info("shutting down" if code == 1001 else "restarting")
    await app.shutdown(
        code=code, reason="server shutting down" if code == 1001 else "server restarting"
    )


def run(app: Roost, *, host: str, port: int, log_level: str, processes: int = 1) -> None:
    """Blocking entry point of ``app.start()``."""
    conf = settings(host, port, log_level, sys.argv[1:], processes)
    logging.basicConfig(
        level=conf.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if conf.broker:
        from roost.hub.urls import make_broker

        app.hub.broker = make_broker(conf.broker)
    if conf.processes > 1:
        from roost.workers import supervise

        supervise(app, conf.host, conf.port, conf.processes)
        return
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(app, conf.host, conf.port))


def run_worker(app: Roost, host: str, port: int, sock: socket.socket) -> None:
    """A worker process's life: serve on the inherited listening socket until signalled."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(app, host, port, sock=sock))
