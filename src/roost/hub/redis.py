"""Redis broker: pub/sub for hub messages, and presence stored in Redis.

Keys, with ``prefix`` (``roost`` by default) and ``<node>`` the random id of one server
process:

- ``<prefix>:presence:<node>``, a hash: connection id -> JSON ``[endpoint, rooms]`` for the
  connections of that server. It expires after ``presence_ttl`` seconds unless refreshed.
- ``<prefix>:conn:<id>``, a string: the node connection ``<id>`` is on, with the same expiry.
  ``send_to`` and ``disconnect`` for a connection elsewhere read this one key.
- ``<prefix>:nodes``, a set: the servers that may have presence. ``connections()`` reads it and
  then each member's hash; a member whose hash has expired is removed there and then.

Each server writes its changes as they happen and, every ``presence_ttl / 3`` seconds, rewrites
its hash and pushes back its keys' expiry, so a server that dies without cleaning up leaves
presence within ``presence_ttl`` seconds (30 by default). One task sends everything, in order:
whatever is queued when it wakes goes to Redis in one pipeline (one round trip).

While Redis is unreachable, local delivery goes on; cross-server messages are dropped
(at-most-once) and counted in ``dropped``; the outage is logged once, and so is each burst of
drops, with its count when it ends; roost reconnects with backoff. Redis refusing the
credentials (a wrong or missing password) is one error line, and roost keeps retrying
quietly. The URL in log lines never shows its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import orjson

from roost.hub.broker import Broker, Deliver, Presence, Sequenced
from roost.hub.credentials import redacted

logger = logging.getLogger("roost.hub")

#: Default bound on the messages waiting to be sent to Redis (count, then bytes).
QUEUE_LIMIT = 100_000
QUEUE_BYTES = 64 * 1024 * 1024
#: Most messages sent in one pipeline.
BATCH_LIMIT = 10_000
#: Most fields or keys written by one command of a presence rewrite.
CHUNK = 1_000
#: Longest wait, in seconds, between two attempts to reach Redis.
MAX_BACKOFF = 5.0

# Remove from the set KEYS[1] each node ARGV[i] whose presence hash KEYS[i + 1] is gone,
# atomically, so a server that writes its hash meanwhile is never removed.
_PRUNE = """
local removed = 0
for i, node in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], node)
  end
end
return removed
"""

Entry = tuple[str, list[str]]
#: What ``_local`` keeps per connection: (endpoint, rooms, room -> metadata).
Stored = tuple[str, list[str], dict[str, Any]]


def _dumps(stored: Stored) -> bytes:
    """A presence entry as stored: ``[endpoint, rooms]``, plus ``metadata`` when there is
    some (room -> value)."""
    return orjson.dumps(stored if stored[2] else stored[:2])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBroker(Broker):
    """``RedisBroker("redis://host:6379/0")``: every roost server using this Redis (and the
    same ``channel`` and ``prefix``) reaches every other one's connections.

    The URL is redis-py's: ``redis://:password@host:6379/0`` (or ``user:password@``),
    ``rediss://`` for TLS (``?ssl_ca_certs=/path/ca.pem`` to trust a private CA), or
    ``unix:///path/redis.sock``.

    ``presence_ttl`` (seconds, 1 to 60, default 30) bounds how long a server that died keeps
    its connections in presence. At most ``queue_limit`` messages (default 100,000) and
    ``queue_bytes`` bytes (default 64 MiB) wait to be sent; past that, and while Redis is
    unreachable, messages are dropped and counted in ``dropped``.
    """

    replicated_presence = False

    def __init__(
        self,
        url: str,
        *,
        channel: str = "roost:hub",
        presence_ttl: float = 30.0,
        prefix: str = "roost",
        queue_limit: int = QUEUE_LIMIT,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        if not 1 <= presence_ttl <= 60:
            raise ValueError("presence_ttl must be between 1 and 60 seconds")
        if queue_limit < 1 or queue_bytes < 1:
            raise ValueError("queue_limit and queue_bytes must be positive")
        self.url = url
        self.shown_url = redacted(url)  # for logs
        self.channel = channel
        self.presence_ttl = presence_ttl
        self.prefix = prefix
        self.queue_limit = queue_limit
        self.queue_bytes = queue_bytes
        #: Messages dropped since the broker was created (queue full or Redis unreachable).
        self.dropped = 0
        self._client: Any = None
        self._prune: Any = None
        self._node = ""
        self._key = ""
        self._nodes_key = f"{prefix}:nodes"
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._local: dict[str, Stored] = {}
        self._dirty: dict[str, Stored | None] = {}  # presence changes not yet written
        self._beat_due = True
        self._wake = asyncio.Event()
        self._closing = False
        self._sender: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._down = False
        self._down_reason = ""
        self._outage = 0  # numbers the outages, so that a late report of one is not a new one
        self._pool_stale = False  # idle pooled connections may predate the last outage
        self._refusing = False
        self._burst = 0  # drops since the current burst began

    @property
    def queued(self) -> int:
        """Messages waiting to be sent to Redis."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Bytes of the messages waiting to be sent to Redis."""
        return self._queued_bytes

    # -- logging, once per state change -------------------------------------------------------

    def _now(self) -> tuple[int, bool]:
        """Where an operation starts: (the last outage's number, whether it goes on)."""
        return self._outage, self._down

    def _failed(self, exc: BaseException, since: tuple[int, bool] | None = None) -> None:
        """An operation failed. It starts an outage only if it began while Redis was reachable
        (``since``, from ``_now()``) and no outage was reported since: the sender and the
        subscriber use separate connections, and one of them often learns of an outage after
        the other has already seen it, or even seen it end."""
        from redis.exceptions import AuthenticationError

        if self._down or (since is not None and since != (self._outage, False)):
            return
        self._down = True
        self._outage += 1
        self.outages += 1
        self._down_reason = f"Redis at {self.shown_url} is unreachable"
        if isinstance(exc, AuthenticationError):
            self._down_reason = f"Redis at {self.shown_url} refused the credentials"
            logger.error(
                "Redis at %s refused the credentials of the broker URL (%s): check its "
                "password; cross-server delivery paused, retrying",
                self.shown_url,
                exc,
            )
        else:
            logger.warning(
                "Redis at %s unreachable (%s): cross-server delivery paused", self.shown_url, exc
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            self._pool_stale = True
            self.reconnects += 1
            logger.warning(
                "Redis at %s reachable again: cross-server delivery resumed", self.shown_url
            )

    def _refused(self, exc: BaseException | None) -> None:
        if exc is not None and not self._refusing:
            logger.warning("Redis at %s refused a command: %s", self.shown_url, exc)
        self._refusing = exc is not None

    def _drop(self, count: int, reason: str) -> None:
        if self._burst == 0:
            logger.warning("dropping messages to other servers: %s", reason)
        self._burst += count
        self.dropped += count

    def _burst_over(self) -> None:
        """After a successful send: end the burst once the queue is down to half its bound."""
        if (
            self._burst
            and len(self._queue) <= self.queue_limit // 2
            and self._queued_bytes <= self.queue_bytes // 2
        ):
            logger.warning("dropped %d messages to other servers; sending again", self._burst)
            self._burst = 0

    # -- life ---------------------------------------------------------------------------------

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside redis-py: a resent pipeline could deliver a message twice. The
        # loops below retry with their own backoff.
        self._client = aioredis.from_url(
            self.url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=10,
            retry=Retry(NoBackoff(), 0),
        )
        self._prune = self._client.register_script(_PRUNE)
        self._node = node_id
        self._key = self._presence_key(node_id)
        self._closing = False
        self._beat_due = True
        self._sender = asyncio.create_task(self._send())
        self._tasks = [
            asyncio.create_task(self._read(deliver)),
            asyncio.create_task(self._heartbeat()),
            self._sender,
        ]

    async def stop(self, node_id: str) -> None:
        """Send what is queued, then remove this server's presence (each step bounded to
        2 s, so that shutdown never waits on an unreachable Redis)."""
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sender), 2)
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a command cut short may take a while to give up
            await asyncio.wait(self._tasks, timeout=2)
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(self._key)
            pipe.srem(self._nodes_key, self._node)
            self._delete_conn_keys(pipe, list(self._local))
            await asyncio.wait_for(pipe.execute(), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.aclose(), 2)

    # -- keys ---------------------------------------------------------------------------------

    def _presence_key(self, node: str) -> str:
        return f"{self.prefix}:presence:{node}"

    def _conn_key(self, conn_id: str) -> str:
        return f"{self.prefix}:conn:{conn_id}"

    # -- outgoing -----------------------------------------------------------------------------

    def publish(self, message: bytes) -> None:
        if (
            len(self._queue) >= self.queue_limit
            or self._queued_bytes + len(message) > self.queue_bytes
        ):
            self._drop(1, "the send queue is full")
            return
        self._queue.append(message)
        self._queued_bytes += len(message)
        self._wake.set()

    def presence_update(
        self, conn_id: str, entry: Entry | None, meta: dict[str, Any] | None = None
    ) -> None:
        stored = None if entry is None else (entry[0], entry[1], meta or {})
        if stored is None:
            self._local.pop(conn_id, None)
        else:
            self._local[conn_id] = stored
        self._dirty[conn_id] = stored  # one pending write per connection, never dropped
        self._wake.set()

    def _take(self) -> list[bytes]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), BATCH_LIMIT))]
        self._queued_bytes -= sum(map(len, batch))
        return batch

    async def _send(self) -> None:
        """The one writer: each round sends the pending presence and the queued messages
        (up to ``BATCH_LIMIT``) in one pipeline, in order."""
        from redis.exceptions import RedisError

        backoff = 0.1
        while True:
            if not (self._queue or self._dirty or self._beat_due):
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._pool_stale:  # Redis came back: its idle connections from before are dead
                self._pool_stale = False
                with contextlib.suppress(Exception):
                    await self._client.connection_pool.disconnect(inuse_connections=False)
            batch = self._take()
            dirty, self._dirty = self._dirty, {}
            beat, self._beat_due = self._beat_due, False
            pipe = self._client.pipeline(transaction=False)
            if beat:
                self._write_all_presence(pipe, dirty)
            else:
                self._write_presence(pipe, dirty)
            for message in batch:
                pipe.publish(self.channel, message)
            since = self._now()
            try:
                results = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                self._failed(exc, since)
                self._beat_due = True  # presence is rewritten whole once Redis is back
                if batch:
                    self._drop(len(batch), self._down_reason)
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.1
            self._recovered()
            errors = [r for r in results if isinstance(r, Exception)]
            self._refused(errors[0] if errors else None)
            refused = sum(isinstance(r, Exception) for r in results[len(results) - len(batch) :])
            if refused:
                self._drop(refused, f"Redis at {self.shown_url} refused them: {errors[0]}")
            else:
                self._burst_over()

    def _write_presence(self, pipe: Any, dirty: dict[str, Stored | None]) -> None:
        """Queue the writes for the presence changes in ``dirty``."""
        added = {cid: _dumps(e) for cid, e in dirty.items() if e is not None}
        gone = [cid for cid, e in dirty.items() if e is None]
        ttl_ms = int(self.presence_ttl * 1000)
        if added:
            pipe.hset(self._key, mapping=added)
            pipe.pexpire(self._key, ttl_ms)
            pipe.sadd(self._nodes_key, self._node)
            for cid in added:
                pipe.set(self._conn_key(cid), self._node, px=ttl_ms)
        if gone:
            pipe.hdel(self._key, *gone)
            self._delete_conn_keys(pipe, gone)

    def _write_all_presence(self, pipe: Any, dirty: dict[str, Stored | None]) -> None:
        """Queue a rewrite of this server's whole presence and of every key's expiry. The new
        hash is built aside and renamed over the old one, so readers never see it half done."""
        local = self._local
        ttl_ms = int(self.presence_ttl * 1000)
        if local:
            aside = f"{self._key}:next"
            pipe.delete(aside)
            items = [(cid, _dumps(e)) for cid, e in local.items()]
            for i in range(0, len(items), CHUNK):
                pipe.hset(aside, mapping=dict(items[i : i + CHUNK]))
            pipe.pexpire(aside, ttl_ms)
            pipe.rename(aside, self._key)
            pipe.sadd(self._nodes_key, self._node)
            for cid in local:
                pipe.set(self._conn_key(cid), self._node, px=ttl_ms)
        else:
            pipe.delete(self._key)
            pipe.srem(self._nodes_key, self._node)
        self._delete_conn_keys(pipe, [cid for cid, e in dirty.items() if e is None])

    def _delete_conn_keys(self, pipe: Any, conn_ids: list[str]) -> None:
        for i in range(0, len(conn_ids), CHUNK):
            pipe.delete(*[self._conn_key(cid) for cid in conn_ids[i : i + CHUNK]])

    async def _heartbeat(self) -> None:
        """Ask the sender for a presence rewrite every ``presence_ttl / 3`` seconds."""
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            self._beat_due = True
            self._wake.set()

    # -- incoming -----------------------------------------------------------------------------

    async def _read(self, deliver: Deliver) -> None:
        from redis.exceptions import RedisError

        backoff = 0.1
        while True:
            pubsub = self._client.pubsub()
            since: tuple[int, bool] | None = None
            try:
                await pubsub.subscribe(self.channel)
                self._recovered()
                since = self._now()
                self._beat_due = True  # Redis may have restarted empty: write presence again
                self._wake.set()
                backoff = 0.1
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        deliver(item["data"])
            except (RedisError, OSError) as exc:
                self._failed(exc, since)
                if since is not None and since != self._now():
                    backoff = 0.0  # an outage already reported: subscribe again at once
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(max(backoff, 0.05) * 2, MAX_BACKOFF)

    # -- presence queries ---------------------------------------------------------------------

    async def presence_node(self, conn_id: str) -> str | None:
        """One GET of ``<prefix>:conn:<id>``; None while Redis is unreachable."""
        from redis.exceptions import RedisError

        if self._client is None or self._down:
            return None
        since = self._now()
        try:
            node = await self._client.get(self._conn_key(conn_id))
        except (RedisError, OSError) as exc:
            self._failed(exc, since)
            return None
        return None if node is None else _text(node)

    async def presence_all(self) -> Presence:
        """One SMEMBERS, then one pipeline of HGETALL, one per other server (no keyspace scan);
        empty while Redis is unreachable."""
        from redis.exceptions import RedisError

        result: Presence = {}
        if self._client is None or self._down:
            return result
        since = self._now()
        try:
            nodes = [_text(n) for n in await self._client.smembers(self._nodes_key)]
            nodes = [n for n in nodes if n != self._node]
            if not nodes:
                return result
            pipe = self._client.pipeline(transaction=False)
            for node in nodes:
                pipe.hgetall(self._presence_key(node))
            mappings = await pipe.execute()
            gone = [node for node, mapping in zip(nodes, mappings, strict=True) if not mapping]
            if gone:
                keys = [self._nodes_key, *(self._presence_key(n) for n in gone)]
                await self._prune(keys=keys, args=gone)
            for mapping in mappings:
                for cid, raw in mapping.items():
                    value = orjson.loads(raw)
                    meta = value[2] if len(value) > 2 else {}
                    result[_text(cid)] = (value[0], value[1], meta)
        except (RedisError, OSError) as exc:
            self._failed(exc, since)
        return result
