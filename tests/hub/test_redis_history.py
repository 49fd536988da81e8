"""Rooms with history in Redis against a real redis-server: the same answers as the in-memory
history, the layout of the keys, expiry, lost histories, the order of sequenced messages
across servers, and what a caller is told while Redis is down."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from roost.hub.history import HistoryUnavailable, MemoryHistory, Position, RoomHistory
from roost.hub.redis import RedisBroker
from roost.hub.redis_history import frame_of, history_keys, unframe
from tests.hub.fakes import eventually
from tests.redis_server import RedisServer, needs_redis

pytestmark = needs_redis

CONFIG = RoomHistory(size=5, ttl=60)
META, LOG = history_keys("roost", "k")

#: Rewrites a stream, making the first ARGV[1] entries ARGV[2] ms older (what waiting would do).
AGE = """
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
for i, e in ipairs(entries) do
  local t = tonumber(e[2][2])
  if i <= tonumber(ARGV[1]) then t = t - tonumber(ARGV[2]) end
  redis.call('XADD', KEYS[1], e[1], 't', string.format('%d', t), 'b', e[2][4])
end
redis.call('PEXPIRE', KEYS[1], ttl)
"""


class Node:
    """A started RedisBroker and the sequenced messages it was handed."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.got: list[tuple[str, int, bytes]] = []
        self.delivered: list[bytes] = []

    def sequenced(self, epoch: str, offset: int, body: bytes) -> None:
        self.got.append((epoch, offset, body))


@asynccontextmanager
async def node_on(redis: RedisServer, **options: Any) -> AsyncIterator[Node]:
    node = Node(RedisBroker(redis.url, presence_ttl=60, **options))
    await node.broker.start(f"node-{id(node)}", node.delivered.append, node.sequenced)
    try:
        yield node
    finally:
        await node.broker.stop(f"node-{id(node)}")


async def subscribed(*nodes: Node) -> None:
    """Wait until the nodes' subscriptions are up (a sequenced message reaches each); return
    with what they got cleared."""
    for node in nodes:
        await node.broker.sequence("probe", CONFIG, b"probe")
        await eventually(lambda node=node: any(b == b"probe" for _, _, b in node.got))  # type: ignore[misc]
    await nodes[0].broker.sequence("probe", CONFIG, b"sync")
    for node in nodes:  # after every probe, in the order of the offsets
        await eventually(lambda node=node: any(b == b"sync" for _, _, b in node.got))  # type: ignore[misc]
        node.got.clear()


def test_frames_and_bad_frames() -> None:
    assert frame_of("5c0f", 12, b"a:b\x00") == b"5c0f:12:a:b\x00"
    assert unframe(b"5c0f:12:a:b\x00") == ("5c0f", 12, b"a:b\x00")
    assert unframe(b"5c0f:12:") == ("5c0f", 12, b"")
    for bad in (
        b"",
        b"5c0f",
        b"5c0f:12",
        b":12:x",
        b"e:-1:x",
        b"e:1e3:x",
        b"e:" + b"9" * 20 + b":",
    ):
        assert unframe(bad) is None, bad
    assert unframe(b"\xff:1:x") is None


def test_keys_are_distinct_and_share_a_cluster_slot() -> None:
    def tag(key: str) -> str:  # Redis Cluster: the slot is that of the hash tag, when set
        start = key.index("{")
        end = key.index("}", start + 1)
        assert end > start + 1
        return key[start + 1 : end]

    seen: set[str] = set()
    for room in ["a", "a}b", "{x}", "}", "a:meta", "a}:log", "é ☃", ""]:
        meta, log = history_keys("roost", f"3:/ws:{room}")
        assert tag(meta) == tag(log)
        assert meta != log and not {meta, log} & seen
        seen |= {meta, log}


async def test_answers_match_the_in_memory_history(redis_server: RedisServer) -> None:
    """The same sequence of messages and reads, with positions right, wrong, ahead and
    behind, sizes changing: both stores give the same answers."""
    rng = random.Random(1)
    memory = MemoryHistory[bytes]()
    async with node_on(redis_server) as node:
        await subscribed(node)
        epochs: dict[str, tuple[str, str]] = {}  # key -> (memory epoch, redis epoch)
        last = dict.fromkeys("ab", 0)
        for key in "ab":
            mine = memory.read(key, CONFIG, None)
            theirs = await node.broker.read_history(key, CONFIG, None, 0)
            assert (theirs.kind, theirs.start, theirs.entries) == ("joined", 0, [])
            epochs[key] = (mine.epoch, theirs.epoch)
        assert epochs["a"][1] != epochs["b"][1]
        for step in range(300):
            key = rng.choice("ab")
            config = RoomHistory(size=rng.choice([3, 5, 8]), ttl=60)
            if rng.random() < 0.5:
                body = f"{key}{step}".encode()
                memory.append(key, body, config)
                await node.broker.sequence(key, config, body)
                last[key] += 1
                continue
            pick = rng.random()
            replay = rng.choice([0, 1, 2, 10])
            if pick < 0.15:
                since = None
            elif pick < 0.25:
                since = ("feedfacefeedface", 1)
            else:
                since = (key, rng.randint(0, last[key] + 2))
            mine_at = theirs_at = None
            if since is not None:
                mine_epoch = epochs[key][0] if since[0] == key else since[0]
                theirs_epoch = epochs[key][1] if since[0] == key else since[0]
                mine_at = Position(mine_epoch, since[1])
                theirs_at = Position(theirs_epoch, since[1])
            mine = memory.read(key, config, mine_at, replay)
            theirs = await node.broker.read_history(key, config, theirs_at, replay)
            assert theirs.epoch == epochs[key][1]
            assert (theirs.kind, theirs.reason, theirs.start, theirs.entries) == (
                mine.kind,
                mine.reason,
                mine.start,
                mine.entries,
            ), (step, since, replay, config)
        # Every message was handed back in order, with its position.
        await eventually(lambda: len(node.got) == sum(last.values()))
        for key in "ab":
            mine_offsets = [o for e, o, b in node.got if b.startswith(key.encode())]
            assert mine_offsets == list(range(1, last[key] + 1))
            assert {e for e, _, b in node.got if b.startswith(key.encode())} == {epochs[key][1]}


async def test_layout_and_expiry_of_the_keys(redis_server: RedisServer) -> None:
    async with node_on(redis_server) as node:
        config = RoomHistory(size=5, ttl=30)
        for i in range(8):
            await node.broker.sequence("k", config, b"m%d" % i)
        meta = await redis_server.command("HGETALL", META)
        assert isinstance(meta, dict)
        assert meta["last"] == "8" and meta["expired"] == "0" and len(meta["epoch"]) == 16
        entries = await redis_server.command("XRANGE", LOG, "-", "+")
        assert isinstance(entries, list)
        assert [e[0] for e in entries] == ["4-0", "5-0", "6-0", "7-0", "8-0"]  # exact MAXLEN
        assert [e[1]["b"] for e in entries] == ["m3", "m4", "m5", "m6", "m7"]
        now_ms = int((await redis_server.command("TIME"))[0]) * 1000  # type: ignore[index]
        assert all(abs(int(e[1]["t"]) - now_ms) < 60_000 for e in entries)
        for key in (META, LOG):
            ttl = await redis_server.command("PTTL", key)
            assert isinstance(ttl, int) and 0 < ttl <= 30_000
        # A read pushes the expiry back too (the room is in use).
        await redis_server.command("PEXPIRE", META, "5000")
        await node.broker.read_history("k", config, None, 0)
        ttl = await redis_server.command("PTTL", META)
        assert isinstance(ttl, int) and ttl > 5_000
        # An idle room's keys expire: its history, and its epoch, are gone.
        epoch = meta["epoch"]
        for key in (META, LOG):
            await redis_server.command("PEXPIRE", key, "1")

        async def gone() -> bool:
            return await redis_server.command("EXISTS", META, LOG) == 0

        await eventually(gone)
        fresh = await node.broker.read_history("k", config, Position(epoch, 8), 0)
        assert (fresh.kind, fresh.reason, fresh.start) == ("not_recovered", "epoch", 0)
        assert fresh.epoch != epoch


async def test_messages_older_than_the_ttl_are_not_replayed(redis_server: RedisServer) -> None:
    async with node_on(redis_server) as node:
        for i in range(8):  # keeps 4..8
            await node.broker.sequence("k", CONFIG, b"%d" % i)
        epoch = (await node.broker.read_history("k", CONFIG, None, 0)).epoch
        await redis_server.command("EVAL", AGE, "1", LOG, "3", "61000")  # 4, 5, 6 are old
        expired = await node.broker.read_history("k", CONFIG, Position(epoch, 5), 5)
        assert (expired.kind, expired.reason) == ("not_recovered", "expired")
        assert expired.start == 6 and expired.entries == [(7, b"6"), (8, b"7")]
        assert await redis_server.command("XLEN", LOG) == 2
        assert await redis_server.command("HGET", META, "expired") == "6"
        recovered = await node.broker.read_history("k", CONFIG, Position(epoch, 6), 0)
        assert (recovered.kind, recovered.entries) == ("recovered", [(7, b"6"), (8, b"7")])
        joined = await node.broker.read_history("k", CONFIG, None, 10)
        assert (joined.start, [o for o, _ in joined.entries]) == (6, [7, 8])
        # Later, trimmed by the size (not by age): said so.
        for i in range(8, 13):  # keeps 9..13
            await node.broker.sequence("k", CONFIG, b"%d" % i)
        trimmed = await node.broker.read_history("k", CONFIG, Position(epoch, 7), 0)
        assert (trimmed.reason, trimmed.start) == ("trimmed", 13)
        older = await node.broker.read_history("k", CONFIG, Position(epoch, 5), 0)
        assert older.reason == "expired"
        # Every message older than the ttl: none replayed, the offsets go on.
        await redis_server.command("EVAL", AGE, "1", LOG, "5", "61000")
        gone = await node.broker.read_history("k", CONFIG, Position(epoch, 12), 3)
        assert (gone.reason, gone.entries, gone.start) == ("expired", [], 13)
        await node.broker.sequence("k", CONFIG, b"13")
        after = await node.broker.read_history("k", CONFIG, Position(epoch, 13), 0)
        assert (after.kind, after.entries) == ("recovered", [(14, b"13")])


@pytest.mark.parametrize("lost", ["meta", "log", "both"])
async def test_a_lost_history_gets_a_new_epoch(redis_server: RedisServer, lost: str) -> None:
    """Keys evicted or flushed: offsets start again at 1 under a new epoch, never reusing
    the old epoch's offsets for other messages."""
    async with node_on(redis_server) as node:
        await subscribed(node)
        for i in range(3):
            await node.broker.sequence("k", CONFIG, b"%d" % i)
        epoch = (await node.broker.read_history("k", CONFIG, None, 0)).epoch
        keys = {"meta": [META], "log": [LOG], "both": [META, LOG]}[lost]
        await redis_server.command("DEL", *keys)
        await node.broker.sequence("k", CONFIG, b"new")
        read = await node.broker.read_history("k", CONFIG, Position(epoch, 3), 5)
        assert read.epoch != epoch
        assert (read.kind, read.reason, read.entries) == ("not_recovered", "epoch", [(1, b"new")])
        await eventually(lambda: len(node.got) == 4)
        assert [(o, b) for _, o, b in node.got] == [(1, b"0"), (2, b"1"), (3, b"2"), (1, b"new")]
        assert node.got[-1][0] == read.epoch


async def test_two_servers_sequencing_at_once_share_one_order(redis_server: RedisServer) -> None:
    async with node_on(redis_server) as one, node_on(redis_server) as two:
        await subscribed(one, two)
        before = await redis_server.commandstats()
        reads_before = await redis_server.stat("total_reads_processed")
        order = [(one, b"one %d" % i) for i in range(300)] + [
            (two, b"two %d" % i) for i in range(300)
        ]
        random.Random(2).shuffle(order)  # interleaved: each call queued in this order
        await asyncio.gather(*(node.broker.sequence("k", CONFIG, body) for node, body in order))
        after = await redis_server.commandstats()
        reads = await redis_server.stat("total_reads_processed") - reads_before
        # One script call per message, sent in pipelines, not one round trip each.
        assert after["evalsha"] - before.get("evalsha", 0) == 600
        assert reads < 100, reads
        for node in (one, two):
            await eventually(lambda node=node: len(node.got) == 600)  # type: ignore[misc]
            assert [o for _, o, _ in node.got] == list(range(1, 601))
            assert len({e for e, _, _ in node.got}) == 1
        assert one.got == two.got  # each its own messages included, in the same order
        bodies = [b for _, _, b in one.got]
        for node in (one, two):  # each server's in the order it sent them
            sent = [body for sender, body in order if sender is node]
            assert [b for b in bodies if b[:3] == sent[0][:3]] == sent
        assert one.delivered == two.delivered == []  # nothing on the plain channel


async def test_scripts_flushed_from_redis_are_loaded_again_without_double_sends(
    redis_server: RedisServer,
) -> None:
    async with node_on(redis_server) as node:
        await subscribed(node)
        await node.broker.sequence("k", CONFIG, b"0")
        await redis_server.command("SCRIPT", "FLUSH")
        await asyncio.gather(*(node.broker.sequence("k", CONFIG, b"%d" % i) for i in (1, 2)))
        await node.broker.read_history("k", CONFIG, None, 0)
        await eventually(lambda: len(node.got) == 3)
        assert [o for _, o, _ in node.got] == [1, 2, 3]
        assert sorted(b for _, _, b in node.got) == [b"0", b"1", b"2"]


async def test_redis_down_fails_history_calls_clearly_then_they_work_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.hub")
    async with node_on(redis_server) as node:
        await subscribed(node)
        await node.broker.sequence("k", CONFIG, b"before")
        redis_server.kill()
        for _ in range(20):
            with pytest.raises(HistoryUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
                await node.broker.sequence("k", CONFIG, b"while down")
        with pytest.raises(HistoryUnavailable, match="room history unavailable"):
            await node.broker.read_history("k", CONFIG, None, 0)
        lines = [r.getMessage() for r in caplog.records]
        assert sum(" unreachable (" in line for line in lines) == 1, lines  # once per outage

        redis_server.start()
        await redis_server.ready()

        async def delivered_again() -> bool:
            try:
                await node.broker.sequence("k", CONFIG, b"after")
            except HistoryUnavailable:
                return False
            return any(b == b"after" for _, _, b in node.got)

        await eventually(delivered_again, 20)
        # Redis restarted empty: the history starts again under a new epoch, and nothing
        # sent while it was down was kept or delivered.
        read = await node.broker.read_history("k", CONFIG, None, 5)
        assert read.entries[0][0] == read.start + 1
        assert {b for _, b in read.entries} == {b"after"} and read.start < 5
        assert all(b != b"while down" for _, _, b in node.got)
        assert len(caplog.records) < 10


async def test_a_stopped_broker_or_a_full_queue_refuses_history_calls(
    redis_server: RedisServer,
) -> None:
    broker = RedisBroker(redis_server.url, presence_ttl=60, queue_bytes=100)
    with pytest.raises(HistoryUnavailable, match="not running"):
        await broker.sequence("k", CONFIG, b"x")
    async with node_on(redis_server, queue_bytes=100) as node:
        with pytest.raises(HistoryUnavailable, match="already wait for Redis"):
            await node.broker.sequence("k", CONFIG, b"x" * 200)
        await node.broker.sequence("k", CONFIG, b"x" * 50)
    with pytest.raises(HistoryUnavailable, match="not running"):
        await node.broker.sequence("k", CONFIG, b"x")


async def test_foreign_messages_on_the_sequenced_channel_are_ignored_and_logged_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.hub")
    async with node_on(redis_server) as node:
        await subscribed(node)
        for _ in range(3):
            await redis_server.command("PUBLISH", node.broker.seq_channel, "not a frame")
        await node.broker.sequence("k", CONFIG, b"real")
        await eventually(lambda: len(node.got) == 1)
        assert node.got[0][1:] == (1, b"real")
        lines = [r.getMessage() for r in caplog.records if "not sequenced" in r.getMessage()]
        assert len(lines) == 1 and "roost:hub:seq" in lines[0]


async def test_redis_refusing_a_call_is_said_clearly_and_logged_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.hub")
    async with node_on(redis_server) as node:
        await subscribed(node)
        await node.broker.sequence("k", CONFIG, b"0")
        await redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        await redis_server.command("CONFIG", "SET", "maxmemory", "1")
        for _ in range(3):
            with pytest.raises(HistoryUnavailable, match=r"refused a room history call: .*memory"):
                await node.broker.sequence("k", CONFIG, b"refused")
        refusals = [r for r in caplog.records if "refused a command" in r.getMessage()]
        assert len(refusals) == 1
        await redis_server.command("CONFIG", "SET", "maxmemory", "0")
        await node.broker.sequence("k", CONFIG, b"1")
        await eventually(lambda: len(node.got) == 2)
        assert [(o, b) for _, o, b in node.got] == [(1, b"0"), (2, b"1")]  # no offset lost


async def test_a_position_far_ahead_is_ahead(redis_server: RedisServer) -> None:
    async with node_on(redis_server) as node:
        await node.broker.sequence("k", CONFIG, b"0")
        epoch = (await node.broker.read_history("k", CONFIG, None, 0)).epoch
        for offset in (2, 2**53 + 1, 2**63 - 1):
            read = await node.broker.read_history("k", CONFIG, Position(epoch, offset), 1)
            assert (read.kind, read.reason, read.start) == ("not_recovered", "ahead", 0)
            assert read.entries == [(1, b"0")]


async def test_a_connection_closed_while_idle_is_replaced_before_a_call(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis (its ``timeout``) or a proxy may close the idle connection: the next call goes
    out on a new one instead of failing, and no outage is reported."""
    caplog.set_level(logging.WARNING, logger="roost.hub")
    monkeypatch.setattr("roost.hub.redis.HISTORY_IDLE", 0.0)  # checked before every round
    async with node_on(redis_server) as node:
        await subscribed(node)
        for i in range(3):
            assert await redis_server.command("CLIENT", "KILL", "TYPE", "normal")
            await node.broker.sequence("k", CONFIG, b"%d" % i)
            read = await node.broker.read_history("k", CONFIG, None, 5)
            assert [b for _, b in read.entries] == [b"%d" % j for j in range(i + 1)]
        assert node.broker.outages == 0
        assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
