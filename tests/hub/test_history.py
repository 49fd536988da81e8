"""Room history: the in-memory store, and the hub's catch-up (replay, then live with no gap
and no duplicate) when messages arrive while a replay is being read, when the broker loses
one, and when the history is lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from roost.hub.broker import MemoryBroker
from roost.hub.history import HistoryRead, HistoryUnavailable, MemoryHistory, Position, RoomHistory
from roost.hub.hub import Hub, room_key
from roost.server.websocket import WebSocketChannel
from tests.hub.fakes import FakeChannel, eventually

CONFIG = RoomHistory(size=5, ttl=60)


@pytest.fixture(autouse=True)
def fake_channels_take_broadcasts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Room broadcasts call ``WebSocketChannel.send_nowait`` directly (the fast path); let
    them reach the fake channels these tests use."""
    real = WebSocketChannel.send_nowait

    def send_nowait(self: Any, message: str | bytes, shared: object = None) -> bool:
        if isinstance(self, FakeChannel):
            return self.send_nowait(message, shared)
        return real(self, message, shared)  # type: ignore[arg-type]

    monkeypatch.setattr(WebSocketChannel, "send_nowait", send_nowait)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_offsets_count_up_and_a_read_replays_what_follows() -> None:
    store = MemoryHistory[str]()
    positions = [store.append("k", f"m{i}", CONFIG) for i in range(3)]
    epoch = positions[0][0]
    assert positions == [(epoch, 1), (epoch, 2), (epoch, 3)]
    read = store.read("k", CONFIG, Position(epoch, 1))
    assert (read.kind, read.start, read.entries) == ("recovered", 1, [(2, "m1"), (3, "m2")])
    assert store.read("k", CONFIG, Position(epoch, 3)).entries == []
    joined = store.read("k", CONFIG, None, replay=2)
    assert (joined.kind, joined.start, joined.entries) == ("joined", 1, [(2, "m1"), (3, "m2")])
    assert store.read("k", CONFIG, None).start == 3
    other = store.read("other", CONFIG, None)
    assert other.epoch != epoch and other.start == 0


def test_what_the_history_no_longer_covers_is_named() -> None:
    clock = Clock()
    store = MemoryHistory[str](clock=clock)
    for i in range(8):
        store.append("k", str(i), CONFIG)  # keeps 4..8
    epoch = store.read("k", CONFIG, None).epoch
    assert store.read("k", CONFIG, Position(epoch, 3)).kind == "recovered"
    trimmed = store.read("k", CONFIG, Position(epoch, 2), replay=1)
    assert (trimmed.kind, trimmed.reason, trimmed.entries) == (
        "not_recovered",
        "trimmed",
        [(8, "7")],
    )
    assert trimmed.start == 7
    assert store.read("k", CONFIG, Position("nope", 3)).reason == "epoch"
    assert store.read("k", CONFIG, Position(epoch, 9)).reason == "ahead"
    clock.now += 30
    store.append("k", "8", CONFIG)
    clock.now += 40  # 4..8 are now 70 s old, 9 is 40 s old
    expired = store.read("k", CONFIG, Position(epoch, 5))
    assert (expired.kind, expired.reason) == ("not_recovered", "expired")
    assert store.read("k", CONFIG, Position(epoch, 8)).entries == [(9, "8")]
    clock.now += 61  # idle past its ttl: the history and its epoch are gone
    fresh = store.read("k", CONFIG, Position(epoch, 9))
    assert fresh.reason == "epoch" and fresh.epoch != epoch and fresh.start == 0


def test_rooms_are_bounded_and_idle_ones_forgotten() -> None:
    clock = Clock()
    store = MemoryHistory[str](clock=clock, max_rooms=3)
    for room in "abcd":
        store.append(room, "x", CONFIG)
    assert len(store) == 3  # "a", used least recently, went
    clock.now += 61
    store.append("e", "x", CONFIG)
    store.append("f", "x", CONFIG)
    assert len(store) <= 3
    clock.now += 10
    for room in "ghij":
        store.append(room, "x", CONFIG)
    assert len(store) == 3


def test_changed_settings_keep_what_fits() -> None:
    store = MemoryHistory[str]()
    for i in range(5):
        store.append("k", str(i), CONFIG)
    epoch = store.read("k", CONFIG, None).epoch
    smaller = RoomHistory(size=2, ttl=60)
    read = store.read("k", smaller, Position(epoch, 3))
    assert read.kind == "recovered" and read.entries == [(4, "3"), (5, "4")]
    assert store.append("k", "5", smaller) == (epoch, 6)


def test_keys_of_two_rooms_never_collide() -> None:
    assert room_key("/a:b", "c") != room_key("/a", "b:c")


class GatedBroker(MemoryBroker):
    """Reads of the history wait for ``gate``; ``lose`` names offsets not handed to nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()
        self.lose: set[int] = set()
        self.fail = False
        self.after_read: Any = None  # awaited once the read is done, before it returns
        self.in_flight: list[Any] | None = None  # deliveries held back, when a list

    async def sequence(self, key: str, history: RoomHistory, body: bytes) -> None:
        if self.fail:
            raise HistoryUnavailable("the store is down")
        epoch, offset = self.history.append(key, body, history)
        if offset in self.lose:
            return
        if self.in_flight is not None:
            self.in_flight.append((epoch, offset, body))
            return
        for loop, _, sequenced in list(self._nodes.values()):
            if sequenced is not None:
                loop.call_soon(sequenced, epoch, offset, body)

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        if self.fail:
            raise HistoryUnavailable("the store is down")
        self.reading.set()
        await self.gate.wait()
        read = self.history.read(key, history, since, replay, limit)
        if self.after_read is not None:
            after, self.after_read = self.after_read, None
            await after()
            for _ in range(3):  # what it published reaches the nodes before the read returns
                await asyncio.sleep(0)
        return read


def parsed(channel: FakeChannel) -> list[dict[str, Any]]:
    return [json.loads(m) for m in channel.sent]


def offsets(channel: FakeChannel) -> list[int]:
    return [m["offset"] for m in parsed(channel) if m["roost"] == "message"]


async def hub_with(broker: MemoryBroker) -> Hub:
    hub = Hub(broker)
    hub.history_of = lambda endpoint, room: CONFIG if room == "r" else None
    await hub.start()
    return hub


async def test_messages_sent_while_the_replay_is_read_follow_it_without_gap_or_duplicate() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        first = FakeChannel()
        hub.add("first", "/c", first)  # type: ignore[arg-type]
        await hub.join("first", "r")
        for i in range(3):
            await hub.broadcast("/c", str(i), room="r")
        await eventually(lambda: offsets(first) == [1, 2, 3])
        epoch = parsed(first)[1]["epoch"]
        late = FakeChannel()
        hub.add("late", "/c", late, resume={"r": Position(epoch, 1)})  # type: ignore[arg-type]
        broker.gate.clear()
        joining = asyncio.create_task(hub.join("late", "r"))
        await broker.reading.wait()
        for i in range(3, 6):  # sequenced after the read began: in it, and delivered live
            await hub.broadcast("/c", str(i), room="r")
        await eventually(lambda: offsets(first) == [1, 2, 3, 4, 5, 6])
        assert late.sent == []  # held while its replay is read

        async def publish_after_the_read() -> None:  # not in the read: only delivered live
            await hub.broadcast("/c", "6", room="r")
            await hub.broadcast("/c", "7", room="r")

        broker.after_read = publish_after_the_read
        broker.gate.set()
        await joining
        await hub.broadcast("/c", "8", room="r")
        await eventually(lambda: offsets(late)[-1:] == [9])
        assert parsed(late)[0]["roost"] == "recovered"
        assert offsets(late) == [2, 3, 4, 5, 6, 7, 8, 9]
        assert [m.get("data") for m in parsed(late)[1:]] == [str(i) for i in range(1, 9)]
    finally:
        await hub.stop()


async def test_a_message_still_in_flight_when_the_replay_was_read_is_not_sent_twice() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        first = FakeChannel()
        hub.add("first", "/c", first)  # type: ignore[arg-type]
        await hub.join("first", "r")
        await hub.broadcast("/c", "0", room="r")
        await eventually(lambda: offsets(first) == [1])
        broker.in_flight = []
        await hub.broadcast("/c", "1", room="r")  # stored, not yet delivered to the nodes
        late = FakeChannel()
        epoch = parsed(first)[1]["epoch"]
        hub.add("late", "/c", late, resume={"r": Position(epoch, 0)})  # type: ignore[arg-type]
        await hub.join("late", "r")
        assert offsets(late) == [1, 2]  # the replay has both
        pending, broker.in_flight = broker.in_flight, None
        for epoch_, offset, body in pending:
            hub._sequenced(epoch_, offset, body)
        await hub.broadcast("/c", "2", room="r")
        await eventually(lambda: offsets(first) == [1, 2, 3])
        await eventually(lambda: offsets(late) == [1, 2, 3])
    finally:
        await hub.stop()


async def test_a_message_the_broker_lost_is_replayed_before_the_next() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        channel = FakeChannel()
        hub.add("a", "/c", channel)  # type: ignore[arg-type]
        await hub.join("a", "r")
        broker.lose = {2, 3}
        for i in range(5):
            await hub.broadcast("/c", str(i), room="r")
        await eventually(lambda: offsets(channel) == [1, 2, 3, 4, 5])
        assert [m["roost"] for m in parsed(channel)] == ["joined"] + ["message"] * 5
        await hub.broadcast("/c", "5", room="r")  # and live delivery goes on
        await eventually(lambda: offsets(channel) == [1, 2, 3, 4, 5, 6])
    finally:
        await hub.stop()


async def test_a_lost_history_is_said_to_live_members() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        channel = FakeChannel()
        hub.add("a", "/c", channel)  # type: ignore[arg-type]
        await hub.join("a", "r")
        await hub.broadcast("/c", "0", room="r")
        await eventually(lambda: offsets(channel) == [1])
        broker.history = MemoryHistory[bytes]()  # the store restarted empty
        await hub.broadcast("/c", "1", room="r")
        await eventually(lambda: len(channel.sent) == 4)
        notice = parsed(channel)[2]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "epoch"
        assert notice["offset"] == 0 and notice["epoch"] == parsed(channel)[3]["epoch"]
    finally:
        await hub.stop()


async def test_an_unreachable_history_fails_the_broadcast_and_is_said_on_join() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        broker.fail = True
        with pytest.raises(HistoryUnavailable):
            await hub.broadcast("/c", "lost", room="r")
        assert hub.unsequenced == 1
        channel = FakeChannel()
        hub.add("a", "/c", channel)  # type: ignore[arg-type]
        await hub.join("a", "r")
        notice = parsed(channel)[0]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "unavailable"
        broker.fail = False
        await hub.broadcast("/c", "back", room="r")
        await eventually(lambda: offsets(channel) == [1])
    finally:
        await hub.stop()


async def test_members_held_in_a_silent_room_leave_nothing_behind() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        first = FakeChannel()
        hub.add("first", "/c", first)  # type: ignore[arg-type]
        await hub.join("first", "r")
        broker.in_flight = []
        await hub.broadcast("/c", "0", room="r")  # kept, never delivered: joiners stay held
        for i in range(50):
            channel = FakeChannel()
            hub.add(f"c{i}", "/c", channel)  # type: ignore[arg-type]
            await hub.join(f"c{i}", "r")
            assert hub.registry.is_held(f"c{i}", "r")
            if i % 2:
                await hub.leave(f"c{i}", "r")
            else:
                hub.remove(f"c{i}")
        hub.remove("first")
        assert hub._catching == {} and hub._marks == {}
    finally:
        await hub.stop()


class SlowChannel(FakeChannel):
    """Its first paced send waits for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if not self.go.is_set():
            self.waiting.set()
            await self.go.wait()
        self.sent.append(text)


async def test_more_than_a_catch_up_can_hold_is_read_again_from_the_history() -> None:
    broker = GatedBroker()
    hub = Hub(broker)
    hub.history_of = lambda endpoint, room: RoomHistory(size=5000, ttl=60)
    await hub.start()
    try:
        first = FakeChannel()
        hub.add("first", "/c", first)  # type: ignore[arg-type]
        await hub.join("first", "r")
        pad = "p" * 1000
        for i in range(10):
            await hub.broadcast("/c", f"{i} {pad}", room="r")
        await eventually(lambda: len(offsets(first)) == 10)
        epoch = parsed(first)[1]["epoch"]
        slow = SlowChannel()
        hub.add("slow", "/c", slow, resume={"r": Position(epoch, 0)})  # type: ignore[arg-type]
        joining = asyncio.create_task(hub.join("slow", "r"))
        await slow.waiting.wait()  # its replay is stuck on the first message
        for i in range(10, 3010):  # 3 MB more: past the 1 MiB its catch-up holds
            await hub.broadcast("/c", f"{i} {pad}", room="r")
        await eventually(lambda: len(offsets(first)) == 3010)
        group = hub._catching[("/c", "r")][0]
        assert group.overflowed and group.buffered <= group.limit
        slow.go.set()
        await joining
        await hub.broadcast("/c", f"3010 {pad}", room="r")
        await eventually(lambda: offsets(slow)[-1:] == [3011])
        assert offsets(slow) == list(range(1, 3012))
        assert [m["data"].split()[0] for m in parsed(slow)[1:]] == [str(i) for i in range(3011)]
    finally:
        await hub.stop()


async def test_after_a_lost_history_what_the_new_one_holds_is_replayed_first() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        channel = FakeChannel()
        hub.add("a", "/c", channel)  # type: ignore[arg-type]
        await hub.join("a", "r")
        await hub.broadcast("/c", "old", room="r")
        await eventually(lambda: offsets(channel) == [1])
        broker.history = MemoryHistory[bytes]()  # the store restarted empty...
        broker.lose = {1, 2}  # ...and its first two messages never reached this node
        for text in ("new 1", "new 2", "new 3"):
            await hub.broadcast("/c", text, room="r")
        await eventually(
            lambda: [m.get("data") for m in parsed(channel)][-3:] == ["new 1", "new 2", "new 3"]
        )
        kinds = [m["roost"] for m in parsed(channel)]
        assert kinds == ["joined", "message", "not_recovered", "message", "message", "message"]
        assert parsed(channel)[2]["offset"] == 0 and offsets(channel) == [1, 1, 2, 3]
    finally:
        await hub.stop()


async def test_a_gap_seen_by_a_member_still_held_is_filled_too() -> None:
    broker = GatedBroker()
    hub = await hub_with(broker)
    try:
        first = FakeChannel()
        hub.add("first", "/c", first)  # type: ignore[arg-type]
        await hub.join("first", "r")
        await hub.broadcast("/c", "0", room="r")
        await eventually(lambda: offsets(first) == [1])
        broker.in_flight = []
        await hub.broadcast("/c", "1", room="r")  # kept; its delivery is still on its way
        late = FakeChannel()
        epoch = parsed(first)[1]["epoch"]
        hub.add("late", "/c", late, resume={"r": Position(epoch, 0)})  # type: ignore[arg-type]
        await hub.join("late", "r")
        assert offsets(late) == [1, 2] and hub.registry.is_held("late", "r")
        pending, broker.in_flight = broker.in_flight, None
        broker.lose = {3}
        for i in (2, 3, 4):  # offset 3 is lost on its way: both see 4 and 5 arrive live
            await hub.broadcast("/c", str(i), room="r")
        del pending  # offset 2 never arrives live either
        await eventually(lambda: offsets(late) == [1, 2, 3, 4, 5])
        await eventually(lambda: offsets(first) == [1, 2, 3, 4, 5])
    finally:
        await hub.stop()
