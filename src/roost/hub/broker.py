"""Brokers carry hub messages between nodes (processes or machines running the same app).

Every node does its own local fan-out, so a broadcast costs one broker message whatever
the number of connections it reaches. Delivery is at-most-once and in order per publisher.

Brokers also sequence and keep the messages of rooms with history (``roost.hub.history``):
``sequence`` gives a message its room's next position, keeps it, and hands it to every node,
the sender included, in the order of the positions; ``read_history`` reads what was kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from roost.hub.history import HistoryRead, HistoryUnavailable, MemoryHistory, Position, RoomHistory

Deliver = Callable[[bytes], None]
#: Called on every node for each sequenced message: (epoch, offset, body).
Sequenced = Callable[[str, int, bytes], None]
#: Presence entries: connection id -> (endpoint, rooms, room -> metadata).
Presence = dict[str, tuple[str, list[str], dict[str, Any]]]


class Broker:
    """Base class. ``publish`` never blocks and keeps order; it never raises when the broker
    is unreachable or its send queue is full: messages are dropped then, counted in
    ``dropped``, and logged once per burst of drops, not once per message.

    A broker with ``replicated_presence`` relies on the hub to replicate presence through
    messages; otherwise it stores presence itself (``presence_*``).
    """

    replicated_presence = True
    #: Messages this broker dropped since it was created (0 for brokers that never drop).
    dropped = 0
    #: Times the link to the other nodes was lost, and times it came back.
    outages = 0
    reconnects = 0
    #: Other nodes the broker knew of when this one linked (0: unknown): with replicated
    #: presence, the hub waits (briefly) at start for their state before serving.
    peers = 0
    _reconnected: Callable[[], None] | None = None

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called each time the link to the other nodes comes back after an
        outage: what was published meanwhile is lost, so the hub announces this node again,
        and replays the room messages sequenced meanwhile from the history. Brokers that
        cannot tell may never call it."""
        self._reconnected = callback

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        """Connect; ``deliver(message)`` is then called for every message from other nodes,
        and ``sequenced(epoch, offset, body)`` for every sequenced message, this node's own
        included."""
        raise NotImplementedError

    async def sequence(self, key: str, history: RoomHistory, body: bytes) -> None:
        """Give ``body`` the next position of room ``key``, keep it (within ``history``'s
        bounds) and hand it to every node; raises HistoryUnavailable when it cannot."""
        raise HistoryUnavailable(f"{describe(self)} keeps no room history")

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        """What a connection joining room ``key`` is sent (``MemoryHistory.read``, at most
        ``limit`` entries when it is not 0); raises HistoryUnavailable when the history
        cannot be reached."""
        raise HistoryUnavailable(f"{describe(self)} keeps no room history")

    def publish(self, message: bytes) -> None:
        """Send ``message`` to every other node."""
        raise NotImplementedError

    async def stop(self, node_id: str) -> None:
        """Disconnect."""

    @property
    def queued_bytes(self) -> int:
        """Bytes published but not yet handed to the other nodes' transport (0 for brokers
        that queue nothing)."""
        return 0

    def presence_update(
        self,
        conn_id: str,
        entry: tuple[str, list[str]] | None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Record (or, with None, forget) a local connection with its metadata per room, for
        brokers that store presence."""

    async def presence_all(self) -> Presence:
        """The connections of the other nodes, for brokers that store presence."""
        return {}

    async def presence_node(self, conn_id: str) -> str | None:
        """The node connection ``conn_id`` is on (None when unknown), for brokers that store
        presence; one O(1) look-up whatever the number of connections."""
        return None


class MemoryBroker(Broker):
    """Nodes in one process: several apps given the same ``MemoryBroker`` behave like servers
    sharing a Redis, so cluster behaviour can be tested without one.

    Messages go to every node, the sender included; hubs ignore their own.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[asyncio.AbstractEventLoop, Deliver, Sequenced | None]] = {}
        #: The room histories the nodes share, as Redis would keep them.
        self.history = MemoryHistory[bytes]()

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        self._nodes[node_id] = (asyncio.get_running_loop(), deliver, sequenced)

    def publish(self, message: bytes) -> None:
        for loop, deliver, _ in list(self._nodes.values()):
            loop.call_soon_threadsafe(deliver, message)

    async def sequence(self, key: str, history: RoomHistory, body: bytes) -> None:
        epoch, offset = self.history.append(key, body, history)
        for loop, _, sequenced in list(self._nodes.values()):
            if sequenced is not None:
                loop.call_soon_threadsafe(sequenced, epoch, offset, body)

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        # A round trip, as to Redis: messages published meanwhile reach the nodes first.
        await asyncio.sleep(0)
        read = self.history.read(key, history, since, replay, limit)
        await asyncio.sleep(0)
        return read

    async def stop(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)


def describe(broker: Any) -> str:
    """A short name for logs."""
    return type(broker).__name__
