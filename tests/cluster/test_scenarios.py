"""What clients of a three-node roost cluster see through network cuts, Redis restarts,
killed nodes, rolling restarts and random faults (run by ``make cluster-test``)."""

from __future__ import annotations

import asyncio

from tests.cluster.conftest import Report
from tests.cluster.harness import PRESENCE_TTL, Cluster, delivered
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
