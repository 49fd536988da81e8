"""Run an example of examples/guide/ as its own process on a free port, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.timing import seconds

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Example:
    """``python -m examples.guide.<name>`` with ROOST_PORT set; stdout kept for assertions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.signalled = False
        self.output = ""

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        env = {**os.environ, "ROOST_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"examples.guide.{self.name}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(200):  # at most ~10 s
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.communicate()[0]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise TimeoutError(f"{self.name} did not start listening")

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the process (once: a second SIGTERM would make it exit now)."""
        assert self.proc is not None
        if not self.signalled and self.proc.poll() is None:
            self.signalled = True
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process, unless a signal was already sent (then wait for that shutdown);
        returns its exit code and keeps its output in ``output``."""
        assert self.proc is not None
        self.send(sig)
        try:
            out, _ = self.proc.communicate(timeout=seconds(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output += out
        return self.proc.returncode
