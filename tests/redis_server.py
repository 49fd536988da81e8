"""A real redis-server for tests: started on a free 127.0.0.1 port, killed and restarted on
demand, with its command statistics for counting what roost asks of it."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile

import pytest

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` without persistence, on its own port and directory."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = tempfile.mkdtemp()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS is not None
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def ready(self, seconds: float = 10) -> None:
        """Wait until the server answers PING."""
        from redis.exceptions import RedisError

        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            try:
                if await self.command("PING"):
                    return
            except (OSError, RedisError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("redis-server did not start")
            await asyncio.sleep(0.02)

    async def command(self, *args: str) -> object:
        """Send one command on a fresh connection and return its decoded reply."""
        import redis.asyncio as aioredis

        client = aioredis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()

    async def commandstats(self) -> dict[str, int]:
        """Calls per command name since the server started (INFO commandstats)."""
        info = await self.command("INFO", "commandstats")
        assert isinstance(info, dict)
        return {
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in info.items()
            if name.startswith("cmdstat_")
        }

    async def stat(self, name: str) -> int:
        """One counter of INFO stats, e.g. ``total_reads_processed``."""
        info = await self.command("INFO", "stats")
        assert isinstance(info, dict)
        return int(info[name])
