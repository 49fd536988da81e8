"""``--processes N``: a supervisor, N worker processes sharing the port, and a relay.

The supervisor binds the listening socket, then forks the relay (which carries hub messages
between workers over a Unix socket) and the workers, which inherit the socket. It restarts a
worker that dies, and on SIGTERM or SIGINT stops every worker gracefully (close 1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.app import Roost

logger = logging.getLogger("roost")


def _fork(target: object, *args: object) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run, then leave without running the parent's cleanup
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            target(*args)  # type: ignore[operator]
        except BaseException:
            logger.exception("worker process failed")
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)
    return pid


def _run_relay(relay_sock: socket.socket) -> None:
    from roost.hub.ipc import relay
    from roost.runner import new_event_loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when it ends
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(relay(relay_sock))


def _run_worker(app: Roost, host: str, port: int, sock: socket.socket, ipc_path: str) -> None:
    from roost.hub.ipc import IpcBroker
    from roost.runner import run_worker

    if app.hub.broker is None:
        app.hub.broker = IpcBroker(ipc_path)
    run_worker(app, host, port, sock)


def supervise(app: Roost, host: str, port: int, processes: int) -> None:
    """Run ``processes`` workers of ``app`` on ``host:port`` until SIGTERM or SIGINT."""
    sock = socket.create_server((host, port), backlog=2048, reuse_port=False)
    sock.setblocking(False)
    tmp = tempfile.mkdtemp(prefix="roost-")
    ipc_path = os.path.join(tmp, "hub.sock")
    relay_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    relay_sock.bind(ipc_path)
    relay_sock.listen(processes * 2)
    relay_sock.setblocking(False)
    relay_pid = _fork(_run_relay, relay_sock)
    workers: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        workers[_fork(_run_worker, app, host, port, sock, ipc_path)] = slot

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(processes):
        spawn(slot)
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    logger.info(
        "roost listening on http://%s:%d with %d worker processes (supervisor pid %d)",
        shown,
        sock.getsockname()[1],
        processes,
        os.getpid(),
    )
    restarts: list[float] = []
    try:
        while workers:
            pid, status = os.wait()
            if pid == relay_pid:
                if not stopping:
                    logger.error("the worker relay exited; restarting it")
                    relay_pid = _fork(_run_relay, relay_sock)
                continue
            if pid not in workers:
                continue
            slot = workers.pop(pid)
            if stopping:
                continue
            logger.error("worker %d exited (status %d); starting a new one", pid, status)
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 10] + [now]
            if len(restarts) > 5 * processes:
                logger.error("workers keep dying; giving up")
                stop(signal.SIGTERM, None)
                continue
            spawn(slot)
    finally:
        try:
            os.kill(relay_pid, signal.SIGTERM)
            os.waitpid(relay_pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        sock.close()
        relay_sock.close()
        shutil.rmtree(tmp, ignore_errors=True)
