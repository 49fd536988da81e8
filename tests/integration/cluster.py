"""Helpers for scale-out tests: run tests/integration/apps/cluster_app.py as real servers."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import websockets

from tests.integration.guide_runner import ROOT, free_port
from tests.timing import eventually, seconds

__all__ = ["ClusterServer", "ask", "eventually", "receive_text"]


class ClusterServer:
    """tests/integration/apps/cluster_app.py served on a free port with extra flags: through
    ``app.start()`` (``python -m tests.integration.apps.cluster_app``), or with ``cli=True``
    through the ``roost`` command (``app``: another app of tests/integration/apps, as
    ``module:attribute``, served that way). Its stderr (the logs) is kept for ``log()``.
    With ``open_files`` its soft open-file limit (``RLIMIT_NOFILE``) is that many."""

    def __init__(
        self,
        *flags: str,
        cli: bool = False,
        env: dict[str, str] | None = None,
        start_new_session: bool = False,
        app: str = "tests.integration.apps.cluster_app:app",
        open_files: int | None = None,
    ) -> None:
        self.port = free_port()
        module = app.partition(":")[0]
        command = [*roost_command(), app] if cli else [sys.executable, "-m", module]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for log())
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port), "--log-level", "INFO", *flags],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=start_new_session,
            preexec_fn=None if open_files is None else _open_files_limit(open_files),
        )

    async def ready(self) -> ClusterServer:
        for _ in range(300):
            assert self.proc.poll() is None, f"the server exited: {self.log()}"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return self
        raise TimeoutError("the server did not start")

    async def client(
        self, path: str = "/ws"
    ) -> tuple[websockets.ClientConnection, dict[str, object]]:
        ws = await websockets.connect(f"ws://127.0.0.1:{self.port}{path}")
        hello = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
        return ws, hello

    async def clients_on_each_worker(
        self, workers: int = 2
    ) -> dict[int, tuple[websockets.ClientConnection, dict[str, object]]]:
        """One client per worker process, by worker pid (the kernel spreads accepts)."""
        by_pid: dict[int, tuple[websockets.ClientConnection, dict[str, object]]] = {}
        for _ in range(40):  # a busy machine may need many batches
            # Connections opened at the same time wake every worker's accept loop; one after
            # another, the worker that accepted last tends to win every time.
            for ws, hello in await asyncio.gather(*(self.client() for _ in range(10))):
                pid = int(str(hello["pid"]))
                if pid in by_pid or len(by_pid) == workers:
                    await ws.close()
                else:
                    by_pid[pid] = (ws, hello)
            if len(by_pid) == workers:
                return by_pid
        raise AssertionError(f"connections reached only workers {sorted(by_pid)}")

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    async def wait(self, timeout: float = 30) -> int:
        """Wait for the server to exit (after a signal the test sent); its exit status. The
        event loop keeps running meanwhile, so the test's clients answer close frames."""
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the server did not exit: {self.log()}") from None

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` once (unless it has exited) and wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return await self.wait()


def _open_files_limit(soft: int) -> Callable[[], None]:
    """Set the soft open-file limit of the process about to run (its hard limit stays)."""

    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def roost_command() -> list[str]:
    """The ``roost`` console script of this environment (or ``python -m roost``)."""
    script = Path(sys.executable).parent / "roost"
    return [str(script)] if script.exists() else [sys.executable, "-m", "roost"]


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie (nobody may reap an orphan in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=seconds(2)).close()
    except OSError:
        return False
    return True


async def ask(ws: websockets.ClientConnection, **cmd: object) -> dict[str, object]:
    """Send a command and return the next JSON reply."""
    await ws.send(json.dumps(cmd))
    while True:
        reply = await asyncio.wait_for(ws.recv(), seconds(5))
        if isinstance(reply, str) and reply.startswith("{"):
            return dict(json.loads(reply))


async def receive_text(ws: websockets.ClientConnection, timeout: float = 5) -> str:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str)
    return message
