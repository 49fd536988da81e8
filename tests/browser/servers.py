"""Apps served in their own process group for the browser tests, to be killed outright
(SIGKILL, the whole group) and started again on the same port; the worker processes of a
``--processes`` server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.http_client import answering
from tests.integration.cluster import children, exited, listening
from tests.integration.guide_runner import ROOT, free_port
from tests.timing import eventually, seconds


class AppServer:
    """``python -m <module> --port <port> <flags>``, started by ``start()`` in a process group
    of its own (a ``--processes`` server's workers and relay included)."""

    def __init__(self, module: str, *flags: str) -> None:
        self.module = module
        self.flags = flags
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for log())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AppServer:
        """Start it and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port), *self.flags],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = self.proc

        async def accepting() -> bool:
            assert proc.poll() is None, f"the server exited: {self.log()}"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(accepting, 15, f"{self.module} listening")
        return self

    def workers(self) -> set[int]:
        """The worker processes of a ``--processes`` server: its children that hold the
        listening socket (the relay does not)."""
        assert self.proc is not None
        inode = _listening_inode(self.port)
        return {pid for pid in children(self.proc.pid) if _holds(pid, inode)}

    async def each_worker_serving(self, count: int) -> list[int]:
        """Wait until the ``count`` workers of a ``--processes`` server all serve (each has
        started and announced itself to the others): each in turn answers ``/readyz`` while
        the others are paused (SIGSTOP). Their pids, sorted."""
        await eventually(lambda: len(self.workers()) == count, 15, f"{count} workers")
        workers = sorted(self.workers())
        for worker in workers:
            others = [pid for pid in workers if pid != worker]
            for pid in others:
                os.kill(pid, signal.SIGSTOP)
            try:
                reply = await answering(self.port, "/readyz")
            finally:
                for pid in others:
                    os.kill(pid, signal.SIGCONT)
            assert reply.status == 200, reply
        return workers

    async def kill(self) -> None:
        """SIGKILL every process of the server at once, and wait until none is left and the
        port is free."""
        assert self.proc is not None
        group = children(self.proc.pid) | {self.proc.pid}
        os.killpg(self.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, seconds(15))
        await eventually(lambda: all(exited(pid) for pid in group), 15, "the processes gone")
        await eventually(lambda: not listening(self.port), 15, "the port free")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL for whatever is left."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, seconds(15))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


def _listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def _holds(pid: int, inode: str) -> bool:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                return True
        except OSError:
            continue
    return False
