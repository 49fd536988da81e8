"""A real redis-server for tests: started on a free 127.0.0.1 port, killed and restarted on
demand, with its command statistics for counting what roost asks of it; optionally with a
password (``--requirepass``) and TLS only (``--tls-port``)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from tests.tls_certs import Certs

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` without persistence, on its own port and directory. ``password``:
    clients must AUTH with it; ``tls``: serve TLS only, with the server certificate of
    ``tls`` (clients are not asked for one)."""

    def __init__(self, *, password: str | None = None, tls: Certs | None = None) -> None:
        self.port = _free_port()
        self.dir = tempfile.mkdtemp()
        self.proc: subprocess.Popen[bytes] | None = None
        self.password = password
        self.tls = tls

    def start(self) -> None:
        assert REDIS is not None
        options: list[str] = []
        if self.password is not None:
            options += ["--requirepass", self.password]
        if self.tls is not None:
            options += [
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls.server_cert),
                "--tls-key-file",
                str(self.tls.server_key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "no",
            ]
        with open(f"{self.dir}/redis.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [
                    REDIS,
                    *options,
                    "--port",
                    "0" if self.tls is not None else str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self.dir,
                ],
                stdout=log,
            )

    def log(self) -> str:
        """What redis-server wrote so far."""
        with open(f"{self.dir}/redis.log", errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self) -> str:
        """The URL a client uses: with the password, and ``rediss://`` trusting the CA."""
        return self.url_with(self.password)

    def url_with(self, password: str | None) -> str:
        """The URL with ``password`` instead of the right one (None: none)."""
        auth = "" if password is None else f":{quote(password, safe='')}@"
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"

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

        client = aioredis.from_url(self.url, decode_responses=True)
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
