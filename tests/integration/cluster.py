"""Helpers for scale-out tests: run tests/integration/apps/cluster_app.py as real servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import websockets

from tests.integration.guide_runner import ROOT, free_port


class ClusterServer:
    """``python -m tests.integration.apps.cluster_app`` with extra flags, on a free port."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.apps.cluster_app",
                "--port",
                str(self.port),
                "--log-level",
                "WARNING",
                *flags,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def ready(self) -> ClusterServer:
        for _ in range(300):
            assert self.proc.poll() is None, "the server exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return self
        raise TimeoutError("the server did not start")

    async def client(self) -> tuple[websockets.ClientConnection, dict[str, object]]:
        ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/ws")
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return ws, hello

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def ask(ws: websockets.ClientConnection, **cmd: object) -> dict[str, object]:
    """Send a command and return the next JSON reply."""
    await ws.send(json.dumps(cmd))
    while True:
        reply = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(reply, str) and reply.startswith("{"):
            return dict(json.loads(reply))


async def receive_text(ws: websockets.ClientConnection, timeout: float = 5) -> str:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str)
    return message


async def eventually(check, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Retry the async ``check()`` until it returns true, for at most ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
