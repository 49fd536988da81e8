"""RedisBroker against a real redis-server: the data layout, what each call costs in Redis
commands, pipelined publishing, and drops while the queue is full or Redis is down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from roost.hub.hub import Hub
from roost.hub.redis import RedisBroker
from tests.hub.fakes import FakeChannel, eventually
from tests.redis_server import RedisServer, needs_redis

pytestmark = needs_redis


@asynccontextmanager
async def hub_on(redis: RedisServer, **options: Any) -> AsyncIterator[Hub]:
    """A started Hub with a RedisBroker (presence_ttl 60 s: no heartbeat during a test)."""
    hub = Hub(RedisBroker(redis.url, presence_ttl=60, **options))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@asynccontextmanager
async def broker_on(
    redis: RedisServer, deliver: Callable[[bytes], None], **options: Any
) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis.url, presence_ttl=60, **options)
    await broker.start(f"node-{id(broker)}", deliver)
    try:
        yield broker
    finally:
        await broker.stop(f"node-{id(broker)}")


async def subscribed(sender: RedisBroker, received: list[bytes]) -> None:
    """Wait until the other broker receives what ``sender`` publishes; return with the queue
    empty and ``received`` cleared."""

    async def probe_arrived() -> bool:
        sender.publish(b"probe")
        return b"probe" in received

    await eventually(probe_arrived)
    sender.publish(b"sync")  # after every probe, in publishing order
    await eventually(lambda: b"sync" in received)
    assert sender.queued == 0
    received.clear()


async def fill_keyspace(redis: RedisServer, count: int) -> None:
    """Unrelated keys, so that a keyspace scan would show in the command counts."""
    await redis.command("MSET", *[x for i in range(count) for x in (f"other:{i}", str(i))])


def delta(before: dict[str, int], after: dict[str, int], command: str) -> int:
    return after.get(command, 0) - before.get(command, 0)


async def test_layout_one_hash_and_one_key_per_connection(redis_server: RedisServer) -> None:
    async with hub_on(redis_server) as hub:
        hub.add("c1", "/chat", FakeChannel())  # type: ignore[arg-type]
        await hub.join("c1", "red")
        node = hub.node_id
        conn_key = "roost:conn:c1"

        async def written() -> bool:
            fields = await redis_server.command("HGETALL", f"roost:presence:{node}")
            return fields == {"c1": '["/chat",["red"]]'}

        await eventually(written)
        assert await redis_server.command("GET", conn_key) == node
        assert await redis_server.command("SMEMBERS", "roost:nodes") == {node}
        for key in (conn_key, f"roost:presence:{node}"):
            ttl = await redis_server.command("PTTL", key)
            assert isinstance(ttl, int) and 0 < ttl <= 60_000
        hub.remove("c1")

        async def removed() -> bool:
            return await redis_server.command("EXISTS", conn_key) == 0

        await eventually(removed)
        hub.add("c2", "/chat", FakeChannel())  # type: ignore[arg-type]
    # A clean stop takes this server's presence away at once.
    assert await redis_server.command("EXISTS", "roost:conn:c2", f"roost:presence:{node}") == 0
    assert await redis_server.command("SMEMBERS", "roost:nodes") == set()


async def test_send_to_and_disconnect_elsewhere_cost_one_get(redis_server: RedisServer) -> None:
    await fill_keyspace(redis_server, 5000)
    async with hub_on(redis_server) as a, hub_on(redis_server) as b:
        channels = {f"a-{i}": FakeChannel() for i in range(3000)}
        for cid, channel in channels.items():
            a.add(cid, "/chat", channel)  # type: ignore[arg-type]

        async def a_visible() -> bool:
            return await b.send_to("a-2999", "ping")

        await eventually(a_visible)
        before = await redis_server.commandstats()
        assert await b.send_to("a-17", "to a") is True
        assert await b.send_to("nobody", "to nobody") is False
        assert await b.disconnect("a-18", 4001, "kicked") is True
        assert await b.disconnect("nobody", 4001, "kicked") is False
        after = await redis_server.commandstats()
        assert delta(before, after, "get") == 4
        for command in ("scan", "keys", "hgetall", "hget", "smembers"):
            assert delta(before, after, command) == 0, command
        await eventually(lambda: channels["a-17"].sent == ["to a"])
        await eventually(lambda: channels["a-18"].closed == (4001, "kicked"))

        a.remove("a-17")

        async def forgotten() -> bool:
            return await b.send_to("a-17", "late") is False

        await eventually(forgotten)
        assert channels["a-17"].sent == ["to a"]


async def test_connections_reads_the_node_set_not_the_keyspace(
    redis_server: RedisServer,
) -> None:
    await fill_keyspace(redis_server, 5000)
    async with hub_on(redis_server) as a, hub_on(redis_server) as b:
        a_ids = [f"a-{i}" for i in range(2000)]
        for i, cid in enumerate(a_ids):
            a.add(cid, "/chat", FakeChannel())  # type: ignore[arg-type]
            if i % 2:
                await a.join(cid, "odd")
        b.add("b-0", "/chat", FakeChannel())  # type: ignore[arg-type]
        b.add("b-other", "/other", FakeChannel())  # type: ignore[arg-type]

        async def a_visible() -> bool:
            return len(await b.connections("/chat")) == 2001

        await eventually(a_visible)
        # A server that died long ago: still in the node set, its hash long expired.
        await redis_server.command("SADD", "roost:nodes", "dead")
        before = await redis_server.commandstats()
        everyone = await b.connections("/chat")
        after = await redis_server.commandstats()
        assert sorted(everyone) == sorted([*a_ids, "b-0"])
        assert delta(before, after, "smembers") == 1
        assert delta(before, after, "hgetall") == 2  # server a, and the dead one added above
        assert delta(before, after, "scan") == 0
        assert delta(before, after, "keys") == 0
        # The dead server was removed from the set by that listing.
        assert await redis_server.command("SISMEMBER", "roost:nodes", "dead") == 0
        assert sorted(await b.connections("/chat", "odd")) == sorted(a_ids[1::2])
        assert sorted(await b.connections()) == sorted([*a_ids, "b-0", "b-other"])


async def test_a_server_that_stops_refreshing_leaves_presence(redis_server: RedisServer) -> None:
    # What a crashed server leaves behind: its keys, no longer refreshed.
    await redis_server.command("HSET", "roost:presence:crashed", "ghost", '["/chat",[]]')
    await redis_server.command("PEXPIRE", "roost:presence:crashed", "500")
    await redis_server.command("SET", "roost:conn:ghost", "crashed", "PX", "500")
    await redis_server.command("SADD", "roost:nodes", "crashed")
    async with hub_on(redis_server) as hub:
        assert await hub.connections() == ["ghost"]
        assert await hub.send_to("ghost", "hello") is True

        async def gone() -> bool:
            return await hub.connections() == [] and not await hub.send_to("ghost", "hello")

        await eventually(gone)
        assert await redis_server.command("SMEMBERS", "roost:nodes") == set()


async def test_publishes_are_pipelined_and_keep_their_order(redis_server: RedisServer) -> None:
    received: list[bytes] = []
    async with (
        broker_on(redis_server, lambda m: None) as a,
        broker_on(redis_server, received.append),
    ):
        await subscribed(a, received)
        reads_before = await redis_server.stat("total_reads_processed")
        messages = [f"m{i}".encode() for i in range(2000)]
        for message in messages:
            a.publish(message)
        assert a.queued == 2000
        await eventually(lambda: len(received) == 2000)
        assert received == messages
        reads = await redis_server.stat("total_reads_processed") - reads_before
        # One pipeline: a few socket reads for 2,000 commands, not one read per message.
        assert reads < 50, reads
        assert a.dropped == 0


def drop_records(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[int]]:
    """The start-of-burst messages and the counts of the end-of-burst summaries."""
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropping")]
    counts = [int(r.args[0]) for r in caplog.records if r.getMessage().startswith("dropped ")]  # type: ignore[index]
    return started, counts


async def test_full_queue_drops_are_counted_and_logged_once_per_burst(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.hub")
    received: list[bytes] = []
    broker = RedisBroker(redis_server.url, presence_ttl=60, queue_limit=10, queue_bytes=1000)
    # Not connected yet: messages wait in the queue, up to its bounds.
    for i in range(25):
        broker.publish(f"early {i}".encode())
    assert (broker.queued, broker.dropped) == (10, 15)
    broker.publish(b"x" * 2000)  # over the byte bound on its own
    assert (broker.queued, broker.dropped) == (10, 16)
    assert broker.queued_bytes == sum(len(f"early {i}") for i in range(10))
    assert drop_records(caplog) == (
        ["dropping messages to other servers: the send queue is full"],
        [],
    )

    async with broker_on(redis_server, received.append) as other:
        await broker.start("publisher", lambda m: None)
        try:
            await eventually(lambda: broker.queued == 0)
            await subscribed(broker, received)
            assert drop_records(caplog)[1] == [16]
            await eventually(lambda: broker.queued == 0)
            for i in range(15):  # a second burst
                broker.publish(f"late {i}".encode())
            assert broker.dropped == 21
            await eventually(lambda: b"late 9" in received)
            started, counts = drop_records(caplog)
            assert len(started) == 2 and counts == [16, 5]
            assert other.dropped == 0
        finally:
            await broker.stop("publisher")


async def test_redis_down_bounded_counted_logged_once_then_resumes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.hub")
    received: list[bytes] = []
    async with (
        broker_on(redis_server, lambda m: None, queue_limit=1000) as a,
        broker_on(redis_server, received.append),
    ):
        a.presence_update("c1", ("/chat", []))
        await subscribed(a, received)
        redis_server.kill()
        for i in range(5000):
            a.publish(f"while down {i}".encode())
        assert a.queued == 1000  # memory stays bounded
        assert a.dropped == 4000
        await eventually(lambda: a.queued == 0)  # the sender tried, and failed
        await eventually(lambda: a.dropped == 5000)
        for _ in range(3):  # more attempts while Redis is down: still one burst
            for i in range(10):
                a.publish(f"still down {i}".encode())
            await eventually(lambda: a.queued == 0)
        await eventually(lambda: a.dropped == 5030)
        # One line when the drops began (the queue filled first), none per message.
        assert drop_records(caplog) == (
            ["dropping messages to other servers: the send queue is full"],
            [],
        )

        redis_server.start()
        await redis_server.ready()

        async def delivered_again() -> bool:
            a.publish(b"back")
            return b"back" in received

        await eventually(delivered_again, 30)
        # The summary is written by the sender once its send succeeded, which may be after
        # the subscriber has seen "back".
        await eventually(lambda: drop_records(caplog)[1] != [], what="the end-of-burst line")
        started, counts = drop_records(caplog)
        assert len(started) == 1
        assert counts == [a.dropped]  # every drop of the burst, summed up once
        assert len(caplog.records) < 10  # never one line per message
        assert not any(m.startswith(b"while down") for m in received)
        # One outage, reported once by each broker (its sender and subscriber both saw it).
        lines = [r.getMessage() for r in caplog.records]
        assert sum(" unreachable (" in line for line in lines) == 2, lines
        await eventually(
            lambda: sum("reachable again" in r.getMessage() for r in caplog.records) == 2
        )
        assert sum("reachable again" in r.getMessage() for r in caplog.records) == 2

        async def presence_rewritten() -> bool:
            return await redis_server.command("GET", "roost:conn:c1") is not None

        await eventually(presence_rewritten)
