"""``--processes N``: a supervisor, N worker processes sharing the port, and a relay.

The supervisor binds the listening socket, then forks the relay (which carries hub messages
between workers over a Unix socket, and sequences and keeps the rooms with history) and the
workers, which inherit the socket. Each child gets
the read end of a control pipe from the supervisor (see roost.runner) and, on Linux, SIGTERM
when the supervisor dies: a child whose supervisor is gone (even by SIGKILL) shuts down. The
relay ignores signals and ends when its pipe closes, removing its socket's directory.

Signals to the supervisor:

- SIGTERM or SIGINT: every worker shuts down gracefully (close 1001), then the relay stops;
  exit status 0. Each worker's readiness endpoint answers 503 as soon as it is told, and
  with a drain delay it keeps serving that long first. A second SIGTERM or SIGINT makes the
  workers exit now; exit status 128 + the signal number.
- SIGHUP: a rolling restart. One worker at a time, a new worker is started and the old one
  closes its WebSockets with 1012 and exits; the port keeps accepting throughout. The new
  workers are forked from the supervisor, so they run the code it loaded at startup.

Workers ignore SIGHUP (it is the supervisor's to act on). A worker that dies is replaced, and
so is the relay (the workers reconnect to it; the new relay starts with no room history); if
they keep dying the supervisor gives up and exits with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext

from roost.hub.ipc import IpcBroker, Relay
from roost.metrics import METRICS_DIR_ENV
from roost.process import (
    EXIT_NOW,
    RESTART,
    STOP,
    ListenError,
    Servable,
    forced_exit_status,
    ignore_stop_signals,
    new_event_loop,
    serve,
)

logger = logging.getLogger("roost")

#: Restarts of crashed workers allowed within ``CRASH_WINDOW`` seconds, per worker slot.
CRASHES_PER_SLOT = 5
CRASH_WINDOW = 10.0
#: How long past ``shutdown_timeout`` a worker may take to exit before it is killed (s).
EXIT_GRACE = 5.0
#: How long a worker told to exit now may take before it is killed (s).
EXIT_NOW_GRACE = 2.0
_PR_SET_PDEATHSIG = 1
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


def parent_death_signal() -> Callable[[], None]:
    """A function that, called in a child, asks the kernel to send it SIGTERM when its parent
    dies (Linux's PR_SET_PDEATHSIG); a no-op elsewhere. Looked up before forking.

    The control pipe's end of file tells the same to a running event loop on every Unix;
    this also covers a child that is still starting up.
    """
    prctl = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return arm


@dataclass
class _Child:
    pid: int
    control: int  # write end of the child's control pipe
    slot: int  # worker slot, or -1 for the relay
    deadline: float | None = None  # when it must have exited (after STOP/RESTART)


@dataclass
class _Crashes:
    times: list[float] = field(default_factory=list)

    def too_many(self, allowed: int) -> bool:
        now = time.monotonic()
        self.times = [t for t in self.times if now - t < CRASH_WINDOW] + [now]
        return len(self.times) > allowed


class Supervisor:
    """Runs ``processes`` workers of ``app`` on ``host:port`` and the relay between them.

    ``ssl``: every worker serves TLS with this context; ``drain_delay``: seconds each worker
    keeps serving, unready, after it is told to stop (see ``roost.process.serve``).
    """

    def __init__(
        self,
        app: Servable,
        host: str,
        port: int,
        processes: int,
        *,
        ssl: SSLContext | None = None,
        drain_delay: float = 0.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.processes = processes
        self.ssl = ssl
        self.drain_delay = drain_delay
        self.workers: dict[int, _Child] = {}  # pid -> serving worker
        self.retiring: dict[int, _Child] = {}  # pid -> worker told to stop or restart
        self.relay: _Child | None = None
        self.status = 0
        self.stopping = False
        self.forced = False
        self._pending_restarts: list[int] = []  # slots still to replace (SIGHUP)
        self._crashes = _Crashes()
        self._relay_crashes = _Crashes()
        self._exit_timeout = app.server_options.shutdown_timeout + drain_delay + EXIT_GRACE
        self._owned: list[int] = []  # fds children must not keep
        self._pid = os.getpid()
        self._arm_parent_death = parent_death_signal()

    # -- children ----------------------------------------------------------------------------

    def _fork(self, target: Callable[[int], None], slot: int) -> _Child:
        """Fork a child running ``target(control_fd)``."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        pid = os.fork()
        if pid == 0:  # the child: run, then leave without running the parent's cleanup
            status = 0
            try:
                os.close(write_end)
                for fd in self._owned:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                signal.set_wakeup_fd(-1)
                for sig in _HANDLED:
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's to act on
                self._arm_parent_death()
                if os.getppid() == self._pid:  # else the supervisor is gone already
                    target(read_end)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("%s process failed", "relay" if slot < 0 else "worker")
                status = 1
            finally:
                logging.shutdown()
                os._exit(status)
        os.close(read_end)
        self._owned.append(write_end)
        return _Child(pid, write_end, slot)

    def _spawn_worker(self, slot: int) -> None:
        child = self._fork(self._worker_main, slot)
        self.workers[child.pid] = child

    def _spawn_relay(self) -> None:
        self.relay = self._fork(self._relay_main, -1)

    def _worker_main(self, control: int) -> None:

        self.relay_sock.close()
        if self.app.server_options.metrics_path is not None:  # values shared through files
            os.environ[METRICS_DIR_ENV] = os.path.join(self.tmp, "metrics")
        if self.app.hub.broker is None:
            self.app.hub.broker = IpcBroker(self.ipc_path)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(
                serve(
                    self.app,
                    self.host,
                    self.port,
                    sock=self.sock,
                    control=control,
                    hangup_restarts=False,
                    ssl=self.ssl,
                    drain_delay=self.drain_delay,
                )
            )

    def _relay_main(self, control: int) -> None:

        self.sock.close()
        # The relay ends when its control pipe closes, as the supervisor stops or dies; until
        # then it carries messages for draining workers, whoever signals every process.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(Relay().serve(self.relay_sock, control=control))
        shutil.rmtree(self.tmp, ignore_errors=True)  # a killed supervisor could not

    def _command(self, child: _Child, command: bytes) -> None:
        with contextlib.suppress(OSError):  # it is exiting already
            os.write(child.control, command)

    def _forget(self, child: _Child) -> None:
        with contextlib.suppress(OSError):
            os.close(child.control)
        with contextlib.suppress(ValueError):
            self._owned.remove(child.control)

    # -- signals -----------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            name = signal.Signals(signum).name
            if not self.stopping:
                logger.info("%s: stopping the workers", name)
                self._stop_all()
            elif not self.forced:
                self.forced = True
                self.status = forced_exit_status(signum)
                logger.warning("second %s: the workers exit now", name)
                deadline = time.monotonic() + EXIT_NOW_GRACE
                for child in [*self.workers.values(), *self.retiring.values()]:
                    self._command(child, EXIT_NOW)
                    child.deadline = min(child.deadline or deadline, deadline)
        elif signum == signal.SIGHUP and not self.stopping:
            logger.info("SIGHUP: replacing the workers one at a time")
            slots = sorted(child.slot for child in self.workers.values())
            self._pending_restarts += [s for s in slots if s not in self._pending_restarts]

    def _stop_all(self) -> None:
        self.stopping = True
        self._pending_restarts.clear()
        deadline = time.monotonic() + self._exit_timeout
        for pid, child in list(self.workers.items()):
            self._command(child, STOP)
            child.deadline = deadline
            self.retiring[pid] = self.workers.pop(pid)

    # -- the loop ----------------------------------------------------------------------------

    def _reap(self) -> None:
        """Collect the children of ours that exited (only ours: the app may have others)."""
        relay = [] if self.relay is None else [self.relay.pid]
        for pid in [*relay, *self.workers, *self.retiring]:
            try:
                done, wait_status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, wait_status = pid, 0
            if done:
                self._exited(pid, os.waitstatus_to_exitcode(wait_status))

    def _exited(self, pid: int, code: int) -> None:
        if self.relay is not None and pid == self.relay.pid:
            self._forget(self.relay)
            self.relay = None
            if not self.stopping:
                logger.error("the relay exited (status %d); starting a new one", code)
                if self._relay_crashes.too_many(CRASHES_PER_SLOT):
                    self._give_up("the relay keeps dying")
                else:
                    self._spawn_relay()
        elif pid in self.retiring:
            self._forget(self.retiring.pop(pid))
        elif pid in self.workers:
            child = self.workers.pop(pid)
            self._forget(child)
            logger.error("worker %d exited (status %d); starting a new one", pid, code)
            if self._crashes.too_many(CRASHES_PER_SLOT * self.processes):
                self._give_up("workers keep dying")
            else:
                self._spawn_worker(child.slot)

    def _give_up(self, why: str) -> None:
        logger.error("%s; giving up", why)
        self.status = 1
        self._stop_all()

    def _roll(self) -> None:
        """One step of a rolling restart: replace the next worker once the last has gone."""
        if self.stopping or self.retiring or not self._pending_restarts:
            return
        slot = self._pending_restarts.pop(0)
        old = next((c for c in self.workers.values() if c.slot == slot), None)
        self._spawn_worker(slot)
        if old is not None:
            del self.workers[old.pid]
            old.deadline = time.monotonic() + self._exit_timeout
            self.retiring[old.pid] = old
            self._command(old, RESTART)

    def _kill_overdue(self) -> float | None:
        """SIGKILL children past their exit deadline; seconds until the next deadline."""
        now = time.monotonic()
        nearest: float | None = None
        for child in self.retiring.values():
            if child.deadline is None:
                continue
            if child.deadline <= now:
                logger.error("worker %d did not exit in time; killing it", child.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.deadline = None
            else:
                left = child.deadline - now
                nearest = left if nearest is None else min(nearest, left)
        return nearest

    def _stop_relay(self) -> None:
        relay = self.relay
        if relay is None:
            return
        self._forget(relay)  # end of file on its control pipe: it stops
        self.relay = None
        deadline = time.monotonic() + EXIT_NOW_GRACE
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(relay.pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    logger.error("the relay did not exit in time; killing it")
                    os.kill(relay.pid, signal.SIGKILL)
                    os.waitpid(relay.pid, 0)
                    break
                time.sleep(0.01)

    def run(self) -> int:
        """Serve until stopped; the exit status."""
        try:
            self.sock = socket.create_server((self.host, self.port), backlog=2048)
        except OSError as exc:
            raise SystemExit(f"roost: {ListenError(self.host, self.port, exc)}") from None
        self.sock.setblocking(False)
        self.tmp = tempfile.mkdtemp(prefix="roost-")
        self.ipc_path = os.path.join(self.tmp, "hub.sock")
        self.relay_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.relay_sock.bind(self.ipc_path)
        self.relay_sock.listen(self.processes * 4)
        self.relay_sock.setblocking(False)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._owned += [wake_r.fileno(), wake_w.fileno()]
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in _HANDLED}
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ)
        if hasattr(selector, "fileno"):
            self._owned.append(selector.fileno())
        try:
            self._spawn_relay()
            for slot in range(self.processes):
                self._spawn_worker(slot)
            shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
            logger.info(
                "roost listening on %s://%s:%d with %d worker processes (supervisor pid %d)",
                "https" if self.ssl is not None else "http",
                shown,
                self.sock.getsockname()[1],
                self.processes,
                self._pid,
            )
            while self.workers or self.retiring or not self.stopping:
                selector.select(self._kill_overdue())
                with contextlib.suppress(BlockingIOError):
                    for signum in wake_r.recv(256):
                        self._on_signal(signum)
                self._reap()
                self._roll()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            signal.signal(signal.SIGCHLD, previous[signal.SIGCHLD])
            ignore_stop_signals()
            for child in [*self.workers.values(), *self.retiring.values()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)  # only after an error in this loop
            self._stop_relay()
            selector.close()
            wake_r.close()
            wake_w.close()
            self.sock.close()
            self.relay_sock.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.status


def supervise(
    app: Servable,
    host: str,
    port: int,
    processes: int,
    *,
    ssl: SSLContext | None = None,
    drain_delay: float = 0.0,
) -> int:
    """Run ``processes`` workers of ``app`` on ``host:port`` until stopped; the exit status.
    ``ssl`` and ``drain_delay`` are ``Supervisor``'s."""
    return Supervisor(app, host, port, processes, ssl=ssl, drain_delay=drain_delay).run()
