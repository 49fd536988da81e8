"""Redis broker: pub/sub for hub messages, presence stored in Redis, and the history of rooms
that keep one (sequenced and stored by Lua scripts, ``roost.hub.redis_history``).

Keys, with ``prefix`` (``roost`` by default) and ``<node>`` the random id of one server
process:

- ``<prefix>:presence:<node>``, a hash: connection id -> JSON ``[endpoint, rooms]`` for the
  connections of that server. It expires after ``presence_ttl`` seconds unless refreshed.
- ``<prefix>:conn:<id>``, a string: the node connection ``<id>`` is on, with the same expiry.
  ``send_to`` and ``disconnect`` for a connection elsewhere read this one key.
- ``<prefix>:nodes``, a set: the servers that may have presence. ``connections()`` reads it and
  then each member's hash; a member whose hash has expired is removed there and then.
- ``<prefix>:history:{<room>}:meta`` and ``:log``, a hash and a stream per room with history
  (``roost.hub.redis_history``), expiring after the room's ``ttl`` without use.

Each server writes its changes as they happen and, every ``presence_ttl / 3`` seconds, rewrites
its hash and pushes back its keys' expiry, so a server that dies without cleaning up leaves
presence within ``presence_ttl`` seconds (30 by default). One task sends everything, in order:
whatever is queued when it wakes goes to Redis in one pipeline (one round trip).

While Redis is unreachable, local delivery goes on; cross-server messages are dropped
(at-most-once) and counted in ``dropped``; the outage is logged once, and so is each burst of
drops, with its count when it ends; roost reconnects with backoff. Redis refusing the
credentials (a wrong or missing password) is one error line, and roost keeps retrying
quietly. The URL in log lines never shows its password.

Rooms with history are sequenced in Redis, one script call per message that gives it the
room's next offset, stores it and publishes it, all at once. The caller awaits it: while Redis
is unreachable it raises HistoryUnavailable (after one attempt per backoff step, and at once in
between), and nothing is ever sent twice. These calls, and the reads of joining connections,
go to Redis in pipelines on a connection of their own, checked with a PING after a second
idle (Redis or a proxy may have closed it).
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
from roost.hub.history import HistoryRead, HistoryUnavailable, Position, RoomHistory, new_epoch
from roost.hub.redis_history import READ, SEQUENCE, history_keys, read_of, sha, unframe

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
#: Longest wait, in seconds, between two attempts to reach Redis for room history, while
#: calls in between fail at once.
HISTORY_BACKOFF = 1.0
#: Seconds after which the room history connection is checked (one PING) before it is used
#: again: Redis, or a proxy, may have closed it meanwhile.
HISTORY_IDLE = 1.0

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
#: The SHA1s Redis knows the room history scripts by (EVALSHA).
_SEQUENCE, _READ = sha(SEQUENCE), sha(READ)
#: What ``_local`` keeps per connection: (endpoint, rooms, room -> metadata).
Stored = tuple[str, list[str], dict[str, Any]]


def _dumps(stored: Stored) -> bytes:
    """A presence entry as stored: ``[endpoint, rooms]``, plus ``metadata`` when there is
    some (room -> value)."""
    return orjson.dumps(stored if stored[2] else stored[:2])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Call:
    """One room history script call waiting for its pipeline."""

    __slots__ = ("args", "future", "keys", "script", "size")

    def __init__(
        self, script: str, keys: list[str], args: list[Any], future: asyncio.Future[Any]
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future
        self.size = sum(len(a) for a in args if isinstance(a, bytes))


class RedisBroker(Broker):
    """``RedisBroker("redis://host:6379/0")``: every roost server using this Redis (and the
    same ``channel`` and ``prefix``) reaches every other one's connections.

    The URL is redis-py's: ``redis://:password@host:6379/0`` (or ``user:password@``),
    ``rediss://`` for TLS (``?ssl_ca_certs=/path/ca.pem`` to trust a private CA), or
    ``unix:///path/redis.sock``.

    ``presence_ttl`` (seconds, 1 to 60, default 30) bounds how long a server that died keeps
    its connections in presence. At most ``queue_limit`` messages (default 100,000) and
    ``queue_bytes`` bytes (default 64 MiB) wait to be sent; past that, and while Redis is
    unreachable, messages are dropped and counted in ``dropped``. The same bounds apply to
    the room history calls waiting for Redis (past them, ``sequence`` raises
    HistoryUnavailable). Sequenced room messages go out on ``<channel>:seq``.
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
        #: The pub/sub channel of sequenced room messages (``roost.hub.redis_history``).
        self.seq_channel = f"{channel}:seq"
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
        self._history: Any = None  # the client for room history, with a pool of its own
        self._calls: deque[_Call] = deque()
        self._calls_bytes = 0
        self._history_wake = asyncio.Event()
        self._historian: asyncio.Task[None] | None = None
        self._history_outage = 0  # the outage after which its connection was last renewed
        self._unframed = False  # a message on seq_channel that was not one was logged

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
        options: dict[str, Any] = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "health_check_interval": 10,
            "retry": Retry(NoBackoff(), 0),
        }
        self._client = aioredis.from_url(self.url, **options)
        self._history = aioredis.from_url(self.url, **options)
        self._prune = self._client.register_script(_PRUNE)
        self._node = node_id
        self._key = self._presence_key(node_id)
        self._closing = False
        self._beat_due = True
        self._sender = asyncio.create_task(self._send())
        self._historian = asyncio.create_task(self._run_history())
        self._tasks = [
            asyncio.create_task(self._read(deliver, sequenced)),
            asyncio.create_task(self._heartbeat()),
            self._sender,
            self._historian,
        ]

    async def stop(self, node_id: str) -> None:
        """Send what is queued, then remove this server's presence (each step bounded to
        2 s, so that shutdown never waits on an unreachable Redis)."""
        self._closing = True
        self._wake.set()
        self._history_wake.set()
        for writer in (self._sender, self._historian):
            if writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(writer), 2)
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a command cut short may take a while to give up
            await asyncio.wait(self._tasks, timeout=2)
        self._fail_calls(self._take_calls(len(self._calls)), "the Redis broker stopped")
        if self._history is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._history.aclose(), 2)
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

    async def _read(self, deliver: Deliver, sequenced: Sequenced | None) -> None:
        """Subscribe to the channel (and to ``seq_channel``, given ``sequenced``); hand each
        message on. Messages published while the subscription is down are lost to this
        server; once it is back, the hub is told (``on_reconnect``), and replays the room
        messages it missed from the history."""
        from redis.exceptions import RedisError

        channels = [self.channel]
        if sequenced is not None:
            channels.append(self.seq_channel)
        seq_channel = self.seq_channel.encode()
        backoff = 0.1
        first = True
        while True:
            pubsub = self._client.pubsub()
            since: tuple[int, bool] | None = None
            try:
                await pubsub.subscribe(*channels)
                self._recovered()
                since = self._now()
                if not first and self._reconnected is not None:
                    self._reconnected()  # the hub fills what the subscription missed
                first = False
                self._beat_due = True  # Redis may have restarted empty: write presence again
                self._wake.set()
                backoff = 0.1
                async for item in pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    if sequenced is not None and item.get("channel") == seq_channel:
                        self._sequenced(sequenced, item["data"])
                    else:
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

    def _sequenced(self, sequenced: Sequenced, data: bytes) -> None:
        frame = unframe(data)
        if frame is not None:
            sequenced(*frame)
        elif not self._unframed:
            self._unframed = True
            logger.warning(
                "ignoring messages on Redis channel %r that are not sequenced room messages "
                "(<epoch>:<offset>:<body>); is another program publishing there?",
                self.seq_channel,
            )

    # -- room history ---------------------------------------------------------------------------

    async def sequence(self, key: str, history: RoomHistory, body: bytes) -> None:
        """One script call: the room's next offset, the message kept in its stream (the last
        ``history.size``, none older than ``history.ttl``) and published on ``seq_channel``,
        atomically. Raises HistoryUnavailable when Redis cannot be reached or refuses it;
        it is never sent twice (when the link breaks after it was sent, it may have been
        sequenced all the same)."""
        await self._call(_SEQUENCE, key, history, [self.seq_channel, body])

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        """One script call with ``MemoryHistory.read``'s answer (creating the room's epoch
        when it has none); raises HistoryUnavailable when Redis cannot be reached."""
        asked = ["", 0] if since is None else [since.epoch, since.offset]
        reply = await self._call(_READ, key, history, [*asked, max(0, replay), max(0, limit)])
        try:
            return read_of(reply)
        except (TypeError, ValueError, IndexError) as exc:
            raise HistoryUnavailable(f"unexpected room history from Redis: {exc}") from None

    async def _call(self, script: str, key: str, history: RoomHistory, extra: list[Any]) -> Any:
        """Queue a script call for the next pipeline and await its reply."""
        if self._history is None or self._closing:
            raise HistoryUnavailable(f"the broker for Redis at {self.shown_url} is not running")
        ttl_ms = max(1, round(history.ttl * 1000))
        args = [new_epoch(), history.size, ttl_ms, *extra]
        future = asyncio.get_running_loop().create_future()
        call = _Call(script, history_keys(self.prefix, key), args, future)
        if len(self._calls) >= self.queue_limit or self._calls_bytes + call.size > self.queue_bytes:
            raise HistoryUnavailable(
                f"{len(self._calls)} room history calls ({self._calls_bytes} bytes) already "
                f"wait for Redis at {self.shown_url}"
            )
        self._calls.append(call)
        self._calls_bytes += call.size
        self._history_wake.set()
        return await call.future

    def _take_calls(self, limit: int = BATCH_LIMIT) -> list[_Call]:
        """Up to ``limit`` waiting calls whose caller still waits."""
        calls, batch = self._calls, list[_Call]()
        while calls and len(batch) < limit:
            call = calls.popleft()
            self._calls_bytes -= call.size
            if not call.future.done():
                batch.append(call)
        return batch

    @staticmethod
    def _fail_calls(batch: list[_Call], why: str) -> None:
        for call in batch:
            if not call.future.done():
                call.future.set_exception(HistoryUnavailable(why))

    async def _run_history(self) -> None:
        """The one writer of room history: each round sends the waiting calls (up to
        ``BATCH_LIMIT``) in one pipeline. Nothing is sent twice. After a failure, calls fail
        at once until the next attempt (backoff doubling up to HISTORY_BACKOFF), unless the
        other connections saw Redis come back."""
        from redis.exceptions import RedisError

        loop = asyncio.get_running_loop()
        backoff, retry_at, used = 0.1, 0.0, loop.time()
        while True:
            if not self._calls:
                if self._closing:
                    return
                self._history_wake.clear()
                await self._history_wake.wait()
                continue
            batch = self._take_calls()
            if not batch:
                continue
            if self._down and loop.time() < retry_at:
                self._fail_calls(batch, f"room history unavailable: {self._down_reason}")
                continue
            if self._history_outage != self._outage:
                # An outage since the last round: this pool's idle connection is likely dead
                # (Redis restarted), and a call sent on it would fail, or worse, be unknown.
                self._history_outage = self._outage
                with contextlib.suppress(Exception):
                    await self._history.connection_pool.disconnect()
            elif not self._down and loop.time() - used > HISTORY_IDLE:
                await self._check_history_link()
            since = self._now()
            try:
                results = await self._run_calls(batch)
            except (RedisError, OSError) as exc:
                self._failed(exc, since)
                retry_at = loop.time() + backoff
                backoff = min(backoff * 2, HISTORY_BACKOFF)
                with contextlib.suppress(Exception):  # its connection may be dead: a new one
                    await self._history.connection_pool.disconnect()
                self._fail_calls(
                    batch,
                    f"room history unavailable: Redis at {self.shown_url} failed ({exc}); "
                    "not sent again (if Redis got it before the link broke, it was done)",
                )
                continue
            except Exception as exc:  # a defect: fail these calls, keep serving the next
                logger.exception("room history calls to Redis at %s failed", self.shown_url)
                self._fail_calls(batch, f"room history calls failed: {exc!r}")
                continue
            backoff, used = 0.1, loop.time()
            self._recovered()
            self._settle(batch, results)

    def _settle(self, batch: list[_Call], results: list[Any]) -> None:
        """Hand each caller its reply, or HistoryUnavailable when Redis refused the call."""
        errors = [r for r in results if isinstance(r, Exception)]
        self._refused(errors[0] if errors else None)
        for call, result in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if isinstance(result, Exception):
                call.future.set_exception(
                    HistoryUnavailable(
                        f"Redis at {self.shown_url} refused a room history call: {result}"
                    )
                )
            else:
                call.future.set_result(result)

    async def _check_history_link(self) -> None:
        """PING on the idle connection; when that fails, drop it, so that the calls go out
        on a new one rather than fail on a link that was closed while idle."""
        from redis.exceptions import RedisError

        try:
            await self._history.ping()
        except (RedisError, OSError):
            with contextlib.suppress(Exception):
                await self._history.connection_pool.disconnect()

    async def _run_calls(self, batch: list[_Call]) -> list[Any]:
        """One pipeline of EVALSHA calls; those Redis does not know the script of (it
        restarted) did not run: the scripts are loaded and they are sent once more."""
        from redis.exceptions import NoScriptError

        results: list[Any] = await self._pipeline(batch)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            for script in (SEQUENCE, READ):
                await self._history.script_load(script)
            again = await self._pipeline([batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._history.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))

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
