"""Hub: local delivery, and nodes sharing a MemoryBroker (replicated presence)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from roost.hub.broker import MemoryBroker
from roost.hub.hub import Hub
from tests.hub.fakes import FakeChannel, eventually


@asynccontextmanager
async def node(broker: MemoryBroker | None) -> AsyncIterator[Hub]:
    hub = Hub(broker)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


def add(hub: Hub, conn_id: str, endpoint: str = "/chat") -> FakeChannel:
    channel = FakeChannel()
    hub.add(conn_id, endpoint, channel)  # type: ignore[arg-type]
    return channel


async def sees(hub: Hub, conn_ids: list[str]) -> bool:
    return sorted(await hub.connections()) == conn_ids


async def test_without_a_broker_only_local_connections_exist() -> None:
    async with node(None) as hub:
        channel = add(hub, "a")
        assert await hub.send_to("a", "hi") is True
        assert await hub.send_to("elsewhere", "hi") is False
        assert await hub.disconnect("elsewhere") is False
        assert channel.sent == ["hi"]
        assert await hub.connections() == ["a"]


async def test_send_to_and_disconnect_follow_remote_presence() -> None:
    broker = MemoryBroker()
    async with node(broker) as one, node(broker) as two:
        b = add(two, "b")
        c = add(two, "c")
        await eventually(lambda: sees(one, ["b", "c"]))
        assert await one.send_to("b", "from one") is True
        assert await one.disconnect("c", 4001, "kicked") is True
        await eventually(lambda: b.sent == ["from one"] and c.closed == (4001, "kicked"))
        assert await one.send_to("nobody", "x") is False
        two.remove("c")

        async def c_forgotten() -> bool:
            return not await one.disconnect("c")

        await eventually(c_forgotten)
        assert await one.connections() == ["b"]
    # two has stopped ("gone"): one has forgotten all of its connections.
    assert await one.connections() == []
    assert await one.send_to("b", "late") is False


async def test_a_node_that_starts_late_learns_the_others_state() -> None:
    broker = MemoryBroker()
    async with node(broker) as one:
        add(one, "a")
        await one.join("a", "red")
        add(one, "b", "/news")
        async with node(broker) as two:

            async def learned() -> bool:
                return sorted(await two.connections()) == ["a", "b"]

            await eventually(learned)
            assert await two.connections("/chat", "red") == ["a"]
            assert await two.connections("/news") == ["b"]
            assert await two.send_to("a", "hello") is True
            await one.leave("a", "red")

            async def left() -> bool:
                return await two.connections("/chat", "red") == []

            await eventually(left)


async def test_join_and_leave_of_a_remote_connection_reach_its_node() -> None:
    broker = MemoryBroker()
    async with node(broker) as one, node(broker) as two:
        add(two, "b")
        await eventually(lambda: sees(one, ["b"]))
        await one.join("b", "red")
        await eventually(lambda: two.rooms_of("b") == frozenset({"red"}))

        async def replicated() -> bool:
            return await one.connections(room="red") == ["b"]

        await eventually(replicated)


async def test_a_large_presence_state_travels_in_bounded_parts() -> None:
    broker = MemoryBroker()
    sizes: list[int] = []
    publish = broker.publish

    def record(message: bytes) -> None:
        sizes.append(len(message))
        publish(message)

    broker.publish = record  # type: ignore[method-assign]
    async with node(broker) as one:
        for i in range(3000):
            add(one, f"c{i}")
            one.registry.join(f"c{i}", "r", {"bio": "x" * 1000})
        async with node(broker) as two:  # its hello gets one's state, in parts

            async def sees_all() -> bool:
                return len(await two.presence("/chat", "r")) == 3000

            await eventually(sees_all)
            members = await two.presence("/chat", "r")
            assert members["c2999"] == {"bio": "x" * 1000}
            assert max(sizes) < 2 * 1024 * 1024
            one._relinked()  # announces again: hello, then more parts to every node

            async def still_all() -> bool:
                return len(await two.presence("/chat", "r")) == 3000

            await eventually(still_all)
