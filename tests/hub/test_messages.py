"""Hub envelopes: every kind round-trips, and nodes of two envelope versions share a broker
without crashing (a rolling upgrade): each logs once and ignores what it cannot read."""

from __future__ import annotations

import logging

import msgspec
import pytest

from roost.hub import messages
from roost.hub.broker import MemoryBroker
from roost.hub.hub import Hub
from roost.hub.messages import Codec, Undecodable
from tests.hub.fakes import FakeChannel, eventually

EVERY_KIND: list[messages.Message] = [
    messages.Hello(n="a", connections={"c1": ("/chat", ["lobby"])}),
    messages.Gone(n="a"),
    messages.Presence(n="a", id="c1", endpoint="/chat", rooms=["x"]),
    messages.Presence(n="a", id="c1"),
    messages.State(n="a", to="b", connections={"c1": ("/chat", [])}),
    messages.Broadcast(n="a", endpoint="/chat", room="r", exclude="c2", text="hé"),
    messages.Broadcast(n="a", endpoint="/chat", binary=b"\x00\xff"),
    messages.SendTo(n="a", id="c1", text="hi"),
    messages.SendTo(n="a", id="c1", binary=b"\x01"),
    messages.Disconnect(n="a", id="c1", code=4000, reason="bye"),
    messages.Join(n="a", id="c1", room="r"),
    messages.Leave(n="a", id="c1", room="r"),
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_kind_round_trips_with_its_version(message: messages.Message) -> None:
    codec = Codec()
    raw = codec.encode(message)
    assert codec.decode(raw) == message
    assert msgspec.msgpack.decode(raw)["v"] == messages.VERSION  # always on the wire


def test_binary_payloads_are_not_base64() -> None:
    raw = Codec().encode(messages.SendTo(n="a", id="c", binary=b"\x00" * 1000))
    assert len(raw) < 1100


def test_what_cannot_be_read_says_why() -> None:
    codec = Codec()
    newer = msgspec.msgpack.encode({"v": 2, "n": "new", "t": "bc", "endpoint": "/x"})
    with pytest.raises(Undecodable) as info:
        codec.decode(newer)
    assert (info.value.node, info.value.version) == ("new", 2)
    changed = msgspec.msgpack.encode({"v": 2, "n": "new", "t": "bc", "endpoint": 7})
    with pytest.raises(Undecodable, match="version 2"):
        codec.decode(changed)
    unknown = msgspec.msgpack.encode({"v": 1, "n": "a", "t": "teleport"})
    with pytest.raises(Undecodable, match="unknown or malformed message 'teleport'"):
        codec.decode(unknown)
    for junk in (b"", b"\xc1", b'{"t": "bc"}', msgspec.msgpack.encode([1, 2])):
        with pytest.raises(Undecodable, match=r"not a roost hub message|malformed"):
            codec.decode(junk)
    # Additive change within a version: a field this node does not know is skipped.
    extra = msgspec.msgpack.encode(
        {"v": 1, "n": "a", "t": "to", "id": "c", "text": "x", "priority": 9}
    )
    assert codec.decode(extra) == messages.SendTo(n="a", id="c", text="x")


class NextVersionCodec(Codec):
    """A node of the next envelope version (it still reads this version)."""

    def encode(self, message: messages.Message) -> bytes:
        message.v = messages.VERSION + 1
        return super().encode(message)


async def test_nodes_of_two_versions_on_one_broker(caplog: pytest.LogCaptureFixture) -> None:
    broker = MemoryBroker()
    old, peer = Hub(broker), Hub(broker)
    new = Hub(broker, codec=NextVersionCodec())
    for hub in (old, peer, new):
        await hub.start()
    try:
        on_old, on_new = FakeChannel(), FakeChannel()
        old.add("o1", "/chat", on_old)  # type: ignore[arg-type]
        new.add("n1", "/chat", on_new)  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="roost.hub"):
            for i in range(5):
                await new.send_to("o1", f"from new {i}")
            await peer.send_to("o1", "from peer")
            await peer.send_to("n1", "from peer")
            await eventually(lambda: "from peer" in on_old.sent and "from peer" in on_new.sent)
        # The old node ignored the newer node's messages and kept serving the others.
        assert on_old.sent == ["from peer"]
        warnings = [r.getMessage() for r in caplog.records if new.node_id in r.getMessage()]
        assert len(warnings) == 2  # one per node that cannot read it, not one per message
        assert all("envelope version 2" in w for w in warnings)
        # The newer node reads the old ones (it knows the older version).
        await old.send_to("n1", "from old")
        await eventually(lambda: "from old" in on_new.sent)
    finally:
        for hub in (old, peer, new):
            await hub.stop()
