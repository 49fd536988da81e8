"""The Redis broker with a password (``redis://:secret@host``) and over TLS (``rediss://``),
against real redis-servers; a wrong or missing password is one clear log line, not a loop."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.hub.redis import RedisBroker
from roost.hub.urls import make_broker
from tests.http_client import answering, request
from tests.integration.cluster import roost_command
from tests.integration.guide_runner import free_port
from tests.redis_server import RedisServer, needs_redis
from tests.timing import eventually, seconds
from tests.tls_certs import Certs, make_certs

pytestmark = needs_redis

PASSWORD = "s3cret/with:odd@chars"


async def started(server: RedisServer) -> AsyncIterator[RedisServer]:
    server.start()
    try:
        try:
            await server.ready()
        except AssertionError:
            if "tls" in server.log().lower():
                pytest.skip(f"this redis-server cannot serve TLS: {server.log()[-200:]}")
            raise
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def password_redis() -> AsyncIterator[RedisServer]:
    async for server in started(RedisServer(password=PASSWORD)):
        yield server


@pytest.fixture
async def tls_redis(certs: Certs) -> AsyncIterator[RedisServer]:
    async for server in started(RedisServer(password=PASSWORD, tls=certs)):
        yield server


async def delivers_across(url: str) -> None:
    """Two brokers on ``url``: what one publishes, the other receives."""
    a, b = make_broker(url), make_broker(url)
    assert isinstance(a, RedisBroker) and isinstance(b, RedisBroker)
    received: list[bytes] = []
    await a.start("node-a", lambda m: None)
    await b.start("node-b", received.append)
    try:

        async def arrived() -> bool:
            a.publish(b"hello")
            return b"hello" in received

        await eventually(arrived)
        a.presence_update("c1", ("/chat", []))

        async def placed() -> bool:
            return await b.presence_node("c1") == "node-a"

        await eventually(placed)
    finally:
        await a.stop("node-a")
        await b.stop("node-b")
    assert a.dropped == 0


async def test_a_password_in_the_url(password_redis: RedisServer) -> None:
    assert password_redis.url.startswith("redis://:s3cret%2Fwith%3Aodd%40chars@")
    await delivers_across(password_redis.url)


async def test_rediss_with_a_password(tls_redis: RedisServer) -> None:
    assert tls_redis.url.startswith("rediss://")
    await delivers_across(tls_redis.url)


@pytest.mark.parametrize("given", ["wrong", None])
async def test_a_wrong_or_missing_password_is_one_clear_line(
    password_redis: RedisServer, caplog: pytest.LogCaptureFixture, given: str | None
) -> None:
    caplog.set_level(logging.DEBUG, logger="roost")
    broker = RedisBroker(password_redis.url_with(given), presence_ttl=60)
    await broker.start("node", lambda m: None)
    try:
        start = await password_redis.stat("total_connections_received")

        async def retried() -> bool:  # several rounds of backoff have gone by
            return await password_redis.stat("total_connections_received") >= start + 6

        await eventually(retried, 30)
        broker.publish(b"lost")
        await eventually(lambda: broker.dropped == 1)
    finally:
        await broker.stop("node")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("roost")]
    assert len([line for line in lines if line[0] == "ERROR"]) == 1, lines
    level, message = lines[0]
    assert level == "ERROR"
    assert "refused the credentials of the broker URL" in message
    assert "check its password" in message
    assert f"127.0.0.1:{password_redis.port}" in message
    shown = f"redis://{':***@' if given else ''}127.0.0.1:{password_redis.port}/0"
    assert lines[1:] == [
        ("WARNING", f"dropping messages to other servers: Redis at {shown} refused the credentials")
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert ":wrong@" not in caplog.text and "s3cret" not in caplog.text


APP = """
from roost import Roost

app = Roost(__file__)


@app.get("/hello")
def hello():
    return "hello"
"""


async def test_the_server_says_it_once_and_serves_on(
    password_redis: RedisServer, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    proc = subprocess.Popen(
        [*roost_command(), "app:app", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "ROOST_BROKER": password_redis.url_with("nope")},
        stderr=subprocess.PIPE,
    )
    try:
        reply = await answering(port, "/hello", exited=lambda: proc.poll() is not None)
        assert reply.status == 200
        start = await password_redis.stat("total_connections_received")

        async def retried() -> bool:
            return await password_redis.stat("total_connections_received") >= start + 4

        await eventually(retried, 30)
        assert (await request(port, "GET", "/hello")).status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, seconds(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    text = stderr.decode()
    assert "Traceback" not in text, text
    assert text.count("refused the credentials of the broker URL") == 1, text
    assert ":nope@" not in text and ":***@" in text
