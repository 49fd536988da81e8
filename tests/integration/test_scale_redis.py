"""Two roost servers sharing a real redis-server: delivery, outages, and crashed servers."""

from __future__ import annotations

import signal

import websockets

from tests.integration.cluster import ClusterServer, ask, eventually, receive_text
from tests.redis_server import RedisServer, needs_redis
from tests.timing import seconds

pytestmark = needs_redis


async def is_listed(ws: websockets.ClientConnection, conn_id: object) -> bool:
    return conn_id in (await ask(ws, op="connections"))["connections"]  # type: ignore[operator]


def broker_url(redis: RedisServer) -> str:
    return f"{redis.url}?presence_ttl=2"


async def test_two_servers_through_redis_survive_outages_and_crashes(
    redis: RedisServer,
) -> None:
    one = await ClusterServer("--broker", broker_url(redis)).ready()
    two = await ClusterServer("--broker", broker_url(redis)).ready()
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

        # Disconnect across servers; then that id is known nowhere.
        kicked, kicked_hello = await two.client()
        await eventually(lambda: is_listed(a, kicked_hello["id"]))
        assert await ask(a, op="disconnect", id=kicked_hello["id"]) == {
            "disconnected": kicked_hello["id"]
        }
        await kicked.wait_closed()
        assert kicked.close_code == 4000

        async def kicked_unknown() -> bool:
            reply = await ask(a, op="send_to", id=kicked_hello["id"], text="late")
            return reply == {"sent": False}

        await eventually(kicked_unknown)

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
                    if await receive_text(b, timeout=seconds(0.3)) == "ping through redis":
                        return True
                except TimeoutError:
                    return False

        await eventually(delivery_resumed, 20)
        await eventually(both_visible)  # presence was written again into the new Redis

        # A server killed outright leaves presence once its key expires.
        await two.stop(signal.SIGKILL)
        assert b_hello["id"] in (await ask(a, op="connections"))["connections"]

        async def b_gone() -> bool:
            return b_hello["id"] not in (await ask(a, op="connections"))["connections"]

        await eventually(b_gone, 15)
        await a.close()
        await local.close()
    finally:
        await one.stop()
        await two.stop()
