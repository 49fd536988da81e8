"""Two roost servers sharing a real redis-server: delivery, outages, and crashed servers."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.integration.cluster import ClusterServer, ask, eventually, receive_text
from tests.integration.guide_runner import free_port

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
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
        return f"redis://127.0.0.1:{self.port}/0?presence_ttl=2"


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)


async def test_two_servers_through_redis_survive_outages_and_crashes(redis: Redis) -> None:
    await asyncio.sleep(0.2)
    one = await ClusterServer("--broker", redis.url).ready()
    two = await ClusterServer("--broker", redis.url).ready()
    try:
        a, a_hello = await one.client()
        local, _ = await one.client()
        b, b_hello = await two.client()

        async def both_visible() -> bool:
            ids = (await ask(a, op="connections"))["connections"]
            return b_hello["id"] in ids and a_hello["id"] in ids

        await eventually(both_visible)
        await a.send('{"op": "broadcast", "text": "over redis"}')
        assert await receive_text(b) == "over redis"
        assert await receive_text(local) == "over redis"
        assert await ask(a, op="send_to", id=b_hello["id"], text="to b") == {"sent": True}
        assert await receive_text(b) == "to b"

        # Redis goes away: local delivery goes on, nothing crashes.
        redis.kill()
        await a.send('{"op": "broadcast", "text": "redis is down"}')
        assert await receive_text(local) == "redis is down"
        # Redis comes back: cross-server delivery resumes by itself.
        redis.start()

        async def delivery_resumed() -> bool:
            await a.send('{"op": "broadcast", "text": "ping through redis"}')
            while True:
                try:
                    if await receive_text(b, timeout=0.3) == "ping through redis":
                        return True
                except TimeoutError:
                    return False

        await eventually(delivery_resumed, seconds=20)
        await eventually(both_visible)  # presence was written again into the new Redis

        # A server killed outright leaves presence once its key expires.
        two.stop(signal.SIGKILL)
        assert b_hello["id"] in (await ask(a, op="connections"))["connections"]

        async def b_gone() -> bool:
            return b_hello["id"] not in (await ask(a, op="connections"))["connections"]

        await eventually(b_gone, seconds=15)
        await a.close()
        await local.close()
    finally:
        one.stop()
        two.stop()
