"""What clients of a three-node roost cluster see through network cuts, Redis restarts,
killed nodes, rolling restarts and random faults (run by ``make cluster-test``)."""

from __future__ import annotations

import asyncio

from tests.cluster.conftest import Report
from tests.cluster.harness import PRESENCE_TTL, Client, Cluster, delivered
from tests.timing import eventually, seconds

pytestmark = [pytest_timeout := __import__("pytest").mark.timeout(seconds(300))]

UNREACHABLE = "unreachable ("
BACK = "reachable again"


async def test_node_cut_off_from_redis(cluster: Cluster, report: Report) -> None:
    """Node n1's link to Redis goes down while its clients stay connected on the front network;
    then it comes back."""
    n1, n2, _ = cluster.nodes
    a1, a2 = await cluster.client(n1), await cluster.client(n1)
    b = await cluster.client(n2)

    async def b_sees(ids: set[str], present: bool) -> bool:
        seen = await b.connections()
        return ids <= seen if present else not (ids & seen)

    await eventually(lambda: b_sees({a1.id, a2.id}, True), 10, "n1's clients listed on n2")
    await delivered(a1, b, "before")
    report.note("before the cut: n1's clients are listed on n2 and n1 -> n2 delivery works")

    cluster.net.link("n1", "b", up=False)
    await a1.broadcast("local-1")
    await eventually(lambda: "local-1" in a2.inbox, 5, "local delivery on n1")
    await eventually(lambda: n1.count(UNREACHABLE) == 1, 20, "n1 logging the outage")
    report.note("link down: local delivery on n1 goes on; n1 logs the outage")
    await eventually(
        lambda: b_sees({a1.id, a2.id}, False), PRESENCE_TTL + 5, "n1's presence expiring on n2"
    )
    report.note(f"n1's connections leave n2's presence (TTL {PRESENCE_TTL} s)")
    for i in range(20):
        await a1.broadcast(f"during-{i}")
    await eventually(lambda: "during-19" in a2.inbox, 5, "local delivery during the outage")
    stats = await n1.stats()
    assert int(str(stats["dropped"])) >= 1, stats
    assert stats["broadcast_errors"] == [], stats
    assert not a1.closed.is_set() and not a2.closed.is_set()
    report.note(
        f"during the outage: 20 broadcasts reach n1's other client, {stats['dropped']} "
        "cross-node messages counted in broker.dropped, no handler saw an exception, "
        "n1's clients stay connected"
    )

    cluster.net.link("n1", "b", up=True)
    await eventually(lambda: n1.count(BACK) == 1, 20, "n1 logging the reconnection")
    await eventually(lambda: b_sees({a1.id, a2.id}, True), 10, "n1's presence rewritten")
    report.note("link up: n1 logs the reconnection; its connections are listed on n2 again")
    sent_out = await delivered(a1, b, "after-out")
    sent_in = await delivered(b, a1, "after-in")
    report.note(
        f"cross-node delivery resumes both ways (n1 -> n2 after {sent_out} broadcast(s), "
        f"n2 -> n1 after {sent_in})"
    )
    assert n1.count(UNREACHABLE) == 1 and n1.count(BACK) == 1, n1.log()
    assert n1.count("dropping messages") == 1, n1.log()
    report.note(
        "n1's log holds exactly one 'unreachable' line, one 'reachable again' line and one "
        "'dropping messages' line for the whole outage"
    )


async def test_redis_restarted_under_load(cluster: Cluster, report: Report) -> None:
    """Redis is killed and started again while a client on every node broadcasts every 10 ms."""
    senders = [await cluster.client(node) for node in cluster.nodes]
    listeners = [await cluster.client(node) for node in cluster.nodes]
    everyone = {c.id for c in senders + listeners}
    await eventually(
        lambda: _all_see(listeners[0], everyone), 10, "every connection listed on n1"
    )
    stop = asyncio.Event()

    async def load(client: Client) -> None:
        i = 0
        while not stop.is_set():
            await client.broadcast(f"load-{client.node}-{i}")
            i += 1
            await asyncio.sleep(0.01)

    loaders = [asyncio.create_task(load(c)) for c in senders]
    await eventually(lambda: all(len(c.inbox) > 50 for c in listeners), 10, "load flowing")
    cluster.redis.kill()
    for node in cluster.nodes:
        await eventually(lambda n=node: n.count(UNREACHABLE) >= 1, 20, f"{node.name} noticing")
    report.note("Redis SIGKILLed under load (3 clients broadcasting every 10 ms): every node logs it")
    await cluster.redis.start()
    for node in cluster.nodes:
        await eventually(lambda n=node: n.count(BACK) >= 1, 20, f"{node.name} reconnecting")
    marks = [len(c.inbox) for c in listeners]
    await eventually(
        lambda: all(
            any(m.startswith(f"load-{s.node}-") for m in c.inbox[mark:])
            for c, mark in zip(listeners, marks, strict=True)
            for s in senders
        ),
        20,
        "every node's broadcasts reaching every node again",
    )
    stop.set()
    await asyncio.gather(*loaders)
    report.note("Redis back: every node logs it, and every listener receives every node's load again")
    await eventually(lambda: _all_see(listeners[0], everyone), 10, "presence rewritten")
    report.note("presence is rewritten: n1 lists all 6 connections again")
    for node in cluster.nodes:
        stats = await node.stats()
        assert node.alive(), node.log()
        assert stats["broadcast_errors"] == [], stats
        assert stats["open"] == 2, stats
        assert node.count(UNREACHABLE) == 1 and node.count(BACK) == 1, node.log()
        assert "Traceback" not in node.log(), node.log()
    assert not any(c.closed.is_set() for c in senders + listeners)
    report.note(
        "no node exited, no handler saw an exception from broadcast, no traceback in any log, "
        "one 'unreachable' and one 'reachable again' line per node, no client disconnected"
    )


async def test_node_killed(cluster: Cluster, report: Report) -> None:
    """Node n3 is SIGKILLed with clients on it."""
    n1, n2, n3 = cluster.nodes
    a, b = await cluster.client(n1), await cluster.client(n2)
    gone = [await cluster.client(n3) for _ in range(3)]
    ids = {c.id for c in gone}
    await eventually(lambda: _all_see(a, ids | {a.id, b.id}), 10, "all listed on n1")
    n3.kill()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    await eventually(lambda: all(c.closed.is_set() for c in gone), 10, "n3's clients cut")
    await eventually(
        lambda: _none_seen(a, ids) , PRESENCE_TTL + 2, "n3's connections leaving presence"
    )
    left = loop.time() - killed
    await eventually(lambda: _none_seen(b, ids), 5, "n3's connections gone on n2 too")
    report.note(
        f"n3 SIGKILLed: its 3 connections leave presence on n1 and n2 after {left:.1f} s "
        f"(documented bound: presence_ttl = {PRESENCE_TTL} s)"
    )
    await delivered(a, b, "n1-to-n2")
    await delivered(b, a, "n2-to-n1")
    fresh = await cluster.client(n2)
    await eventually(lambda: _all_see(a, {a.id, b.id, fresh.id}), 10, "a new client listed")
    report.note("n1 and n2 keep serving: delivery both ways, and a new client is listed on n1")


async def _all_see(client: Client, ids: set[str]) -> bool:
    return ids <= await client.connections()


async def _none_seen(client: Client, ids: set[str]) -> bool:
    return not (ids & await client.connections())
