"""Redis broker: pub/sub for hub messages, presence in per-server hashes that expire.

A server that crashes stops refreshing its presence key, which Redis then drops within
``presence_ttl`` seconds (30 by default), so its connections leave ``app.connections()``.
While Redis is unreachable, local delivery goes on, cross-server messages are dropped
(at-most-once), the failure is logged once, and roost reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from roost.hub.broker import Broker, Deliver, Presence

logger = logging.getLogger("roost.hub")

QUEUE_LIMIT = 100_000
MAX_BACKOFF = 5.0


class RedisBroker(Broker):
    """``RedisBroker("redis://host:6379/0")``: every roost server using this Redis (and the
    same ``channel``) reaches every other one's connections."""

    replicated_presence = False

    def __init__(
        self,
        url: str,
        *,
        channel: str = "roost:hub",
        presence_ttl: float = 30.0,
        prefix: str = "roost",
    ) -> None:
        if not 1 <= presence_ttl <= 60:
            raise ValueError("presence_ttl must be between 1 and 60 seconds")
        self.url = url
        self.channel = channel
        self.presence_ttl = presence_ttl
        self.prefix = prefix
        self._client: Any = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._local: Presence = {}
        self._key = ""
        self._down = False
        self.dropped = 0

    def _failed(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning(
                "Redis at %s unreachable (%s): cross-server delivery paused", self.url, exc
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            logger.warning("Redis at %s reachable again: cross-server delivery resumed", self.url)

    async def start(self, node_id: str, deliver: Deliver) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        self._key = f"{self.prefix}:presence:{node_id}"
        self._tasks = [
            asyncio.create_task(self._read(deliver)),
            asyncio.create_task(self._send()),
            asyncio.create_task(self._heartbeat()),
        ]

    def publish(self, message: bytes) -> None:
        try:
            self._queue.put_nowait(("pub", message))
        except asyncio.QueueFull:
            self.dropped += 1

    def presence_update(self, conn_id: str, entry: tuple[str, list[str]] | None) -> None:
        if entry is None:
            self._local.pop(conn_id, None)
        else:
            self._local[conn_id] = entry
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(("presence", (conn_id, entry)))

    async def _read(self, deliver: Deliver) -> None:
        from redis.exceptions import RedisError

        backoff = 0.1
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._recovered()
                backoff = 0.1
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        deliver(item["data"])
            except (RedisError, OSError) as exc:
                self._failed(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _send(self) -> None:
        from redis.exceptions import RedisError

        while True:
            kind, item = await self._queue.get()
            try:
                if kind == "pub":
                    await self._client.publish(self.channel, item)
                else:
                    conn_id, entry = item
                    if entry is None:
                        await self._client.hdel(self._key, conn_id)
                    else:
                        pipe = self._client.pipeline(transaction=False)
                        pipe.hset(self._key, conn_id, orjson.dumps(entry))
                        pipe.expire(self._key, int(self.presence_ttl) + 1)
                        await pipe.execute()
                self._recovered()
            except (RedisError, OSError) as exc:
                self._failed(exc)  # dropped: delivery is at-most-once

    async def _heartbeat(self) -> None:
        """Rewrite this server's presence and push its expiry back, every ttl/3 seconds."""
        from redis.exceptions import RedisError

        while True:
            try:
                pipe = self._client.pipeline(transaction=True)
                pipe.delete(self._key)
                if self._local:
                    pipe.hset(
                        self._key, mapping={k: orjson.dumps(v) for k, v in self._local.items()}
                    )
                    pipe.expire(self._key, int(self.presence_ttl) + 1)
                await pipe.execute()
                self._recovered()
            except (RedisError, OSError) as exc:
                self._failed(exc)
            await asyncio.sleep(self.presence_ttl / 3)

    async def presence_all(self) -> Presence:
        from redis.exceptions import RedisError

        result: Presence = {}
        try:
            keys = [k async for k in self._client.scan_iter(match=f"{self.prefix}:presence:*")]
            if keys:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.hgetall(key)
                for mapping in await pipe.execute():
                    for cid, raw in mapping.items():
                        endpoint, rooms = orjson.loads(raw)
                        result[cid.decode() if isinstance(cid, bytes) else cid] = (endpoint, rooms)
        except (RedisError, OSError) as exc:
            self._failed(exc)
        return result

    async def stop(self, node_id: str) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.delete(self._key), 2)
            with contextlib.suppress(Exception):
                await self._client.aclose()
