"""The connections of one process: id -> channel, endpoints, rooms, and local delivery; and
the replicated index of other nodes' connections (``RemotePresence``)."""

from __future__ import annotations

from typing import Any

from roost.protocol.connection import SharedMessage
from roost.server.stats import Histogram
from roost.server.websocket import WebSocketChannel

#: Upper bounds of the histogram of connections reached per broadcast.
DELIVERY_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000)


class Registry:
    """Local connections by id, by endpoint and by room (rooms are scoped to an endpoint).

    Delivery is at-most-once: a message to a connection whose buffer is over its limit is
    dropped or closes that connection, as its slow-consumer policy says.

    A member of a room may be held (``join(..., held=True)``): it is in the room (presence
    counts it) but room broadcasts skip it until ``release``, while its history is replayed.
    Each membership may carry metadata (any JSON value).
    """

    def __init__(self) -> None:
        self._channels: dict[str, WebSocketChannel] = {}
        self._endpoint_of: dict[str, str] = {}
        self._endpoints: dict[str, dict[str, WebSocketChannel]] = {}
        self._rooms: dict[tuple[str, str], dict[str, WebSocketChannel]] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._held: dict[tuple[str, str], set[str]] = {}
        self._meta: dict[tuple[str, str], Any] = {}  # (connection id, room) -> metadata
        #: Local connections each broadcast reached (its count is the number of broadcasts).
        self.deliveries = Histogram(DELIVERY_BUCKETS)

    def __len__(self) -> int:
        return len(self._channels)

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self._channels

    def add(self, conn_id: str, endpoint: str, channel: WebSocketChannel) -> None:
        """Register an open connection."""
        self._channels[conn_id] = channel
        self._endpoint_of[conn_id] = endpoint
        self._endpoints.setdefault(endpoint, {})[conn_id] = channel

    def remove(self, conn_id: str) -> None:
        """Forget a connection and its rooms (idempotent)."""
        channel = self._channels.pop(conn_id, None)
        if channel is None:
            return
        endpoint = self._endpoint_of.pop(conn_id)
        members = self._endpoints.get(endpoint)
        if members is not None:
            members.pop(conn_id, None)
            if not members:
                del self._endpoints[endpoint]
        for room in self._rooms_of.pop(conn_id, ()):
            self._leave(endpoint, room, conn_id)
            self._meta.pop((conn_id, room), None)

    def counts(self) -> dict[str, int]:
        """Endpoint path -> its open local connections."""
        return {endpoint: len(members) for endpoint, members in self._endpoints.items()}

    def channel(self, conn_id: str) -> WebSocketChannel | None:
        """A local connection's channel."""
        return self._channels.get(conn_id)

    def endpoint_of(self, conn_id: str) -> str | None:
        """The endpoint path a local connection belongs to."""
        return self._endpoint_of.get(conn_id)

    def join(self, conn_id: str, room: str, meta: Any = None, *, held: bool = False) -> bool:
        """Put a local connection in ``room`` of its endpoint with ``meta`` (held: skipped by
        room broadcasts until ``release``); whether it was not in the room already (if it
        was, only its metadata changes)."""
        channel = self._channels.get(conn_id)
        if channel is None:
            return False
        if meta is None:
            self._meta.pop((conn_id, room), None)
        else:
            self._meta[(conn_id, room)] = meta
        rooms = self._rooms_of.setdefault(conn_id, set())
        if room in rooms:
            return False
        rooms.add(room)
        key = (self._endpoint_of[conn_id], room)
        self._rooms.setdefault(key, {})[conn_id] = channel
        if held:
            self._held.setdefault(key, set()).add(conn_id)
        return True

    def hold(self, conn_id: str, room: str) -> None:
        """Have room broadcasts skip a member, until ``release``."""
        endpoint = self._endpoint_of.get(conn_id)
        if endpoint is not None and room in self._rooms_of.get(conn_id, ()):
            self._held.setdefault((endpoint, room), set()).add(conn_id)

    def has_room(self, endpoint: str, room: str) -> bool:
        """Whether a local connection is in ``room`` of ``endpoint``."""
        return (endpoint, room) in self._rooms

    def live_members(self, endpoint: str, room: str) -> list[str]:
        """The members of a room that room broadcasts reach (those not held)."""
        held = self._held.get((endpoint, room), ())
        return [cid for cid in self._rooms.get((endpoint, room), ()) if cid not in held]

    def release(self, conn_id: str, room: str) -> None:
        """Let room broadcasts reach a held member."""
        endpoint = self._endpoint_of.get(conn_id)
        if endpoint is not None:
            self._unhold((endpoint, room), conn_id)

    def is_held(self, conn_id: str, room: str) -> bool:
        """Whether room broadcasts skip this member for now."""
        endpoint = self._endpoint_of.get(conn_id)
        held = self._held.get((endpoint or "", room))
        return held is not None and conn_id in held

    def _unhold(self, key: tuple[str, str], conn_id: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.discard(conn_id)
            if not held:
                del self._held[key]

    def leave(self, conn_id: str, room: str) -> bool:
        """Take a local connection out of ``room``; whether it was in it."""
        rooms = self._rooms_of.get(conn_id)
        if rooms is None or room not in rooms:
            return False
        rooms.discard(room)
        self._meta.pop((conn_id, room), None)
        self._leave(self._endpoint_of[conn_id], room, conn_id)
        return True

    def _leave(self, endpoint: str, room: str, conn_id: str) -> None:
        key = (endpoint, room)
        self._unhold(key, conn_id)
        members = self._rooms.get(key)
        if members is not None:
            members.pop(conn_id, None)
            if not members:
                del self._rooms[key]

    def meta_of(self, conn_id: str, room: str) -> Any:
        """The metadata a local connection joined ``room`` with (None when none)."""
        return self._meta.get((conn_id, room))

    def room_meta(self, conn_id: str) -> dict[str, Any]:
        """Room -> metadata, for the rooms a local connection joined with metadata."""
        return {
            r: self._meta[(conn_id, r)]
            for r in self._rooms_of.get(conn_id, ())
            if (conn_id, r) in self._meta
        }

    def rooms_of(self, conn_id: str) -> frozenset[str]:
        """The rooms a local connection is in."""
        return frozenset(self._rooms_of.get(conn_id, ()))

    def members(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of local connections, optionally of one endpoint and room."""
        if endpoint is None:
            if room is None:
                return list(self._channels)
            return [cid for (_, r), m in self._rooms.items() if r == room for cid in m]
        if room is None:
            return list(self._endpoints.get(endpoint, ()))
        return list(self._rooms.get((endpoint, room), ()))

    def broadcast(
        self,
        endpoint: str,
        message: str | bytes,
        *,
        room: str | None = None,
        exclude: str | None = None,
        held: bool = False,
    ) -> int:
        """Send to every local connection of ``endpoint`` (or of its ``room``: to its held
        members too with ``held``); the count sent.

        The frame is encoded once and the same bytes are written to every connection that
        did not negotiate compression (or for which the message is under the compression
        threshold). For connections that negotiated compression without server context
        takeover, the message is compressed once per window size agreed, and that frame is
        shared too; a connection with context takeover compresses its own.
        """
        targets = (
            self._endpoints.get(endpoint) if room is None else self._rooms.get((endpoint, room))
        )
        if not targets:
            self.deliveries.observe(0)
            return 0
        shared = SharedMessage(message)
        send = WebSocketChannel.send_nowait
        skipped = self._held.get((endpoint, room)) if room is not None and not held else None
        if skipped:
            sent = sum(
                [
                    send(ch, message, shared)
                    for cid, ch in list(targets.items())
                    if cid != exclude and cid not in skipped
                ]
            )
        elif exclude is None:
            sent = sum([send(channel, message, shared) for channel in list(targets.values())])
        else:
            sent = sum(
                [send(ch, message, shared) for cid, ch in list(targets.items()) if cid != exclude]
            )
        self.deliveries.observe(sent)
        return sent

    def send_to(self, conn_id: str, message: str | bytes) -> bool:
        """Send to one local connection; False when it is not here or not open."""
        channel = self._channels.get(conn_id)
        return channel is not None and channel.send_nowait(message)

    def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one local connection; False when it is not here."""
        channel = self._channels.get(conn_id)
        if channel is None:
            return False
        channel.close(code, reason)
        return True


class RemotePresence:
    """Other nodes' connections as replicated through broker messages (memory and ipc
    brokers): id -> (node, endpoint, rooms).

    Finding a connection's node is one dict lookup; replacing or forgetting a node costs
    that node's connections only; listing one endpoint visits that endpoint's connections.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, list[str]]] = {}
        self._meta: dict[str, dict[str, Any]] = {}  # id -> room -> metadata, when any
        self._by_node: dict[str, set[str]] = {}
        self._by_endpoint: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self._entries

    def node_of(self, conn_id: str) -> str | None:
        """The node a remote connection is on, or None when it is not known."""
        entry = self._entries.get(conn_id)
        return None if entry is None else entry[0]

    def update(
        self,
        node: str,
        conn_id: str,
        entry: tuple[str, list[str]] | None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Record ``node``'s connection ``conn_id`` with its (endpoint, rooms) and its
        metadata per room, or with None forget it (only if it was recorded for ``node``)."""
        old = self._entries.get(conn_id)
        if entry is None:
            if old is not None and old[0] == node:
                self._drop(conn_id)
            return
        if old is not None:
            self._drop(conn_id)
        endpoint, rooms = entry
        self._entries[conn_id] = (node, endpoint, list(rooms))
        if meta:
            self._meta[conn_id] = meta
        self._by_node.setdefault(node, set()).add(conn_id)
        self._by_endpoint.setdefault(endpoint, set()).add(conn_id)

    def replace(
        self,
        node: str,
        entries: dict[str, tuple[str, list[str]]],
        meta: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Make ``entries`` (id -> (endpoint, rooms)), with ``meta`` (id -> room ->
        metadata), the whole presence of ``node``."""
        self.forget(node)
        meta = meta or {}
        for conn_id, entry in entries.items():
            self.update(node, conn_id, entry, meta.get(conn_id))

    def forget(self, node: str) -> list[tuple[str, str, list[str]]]:
        """Forget every connection of ``node`` (it left or died); what was forgotten, as
        (id, endpoint, rooms)."""
        gone = []
        for conn_id in list(self._by_node.get(node, ())):
            _, endpoint, rooms = self._entries[conn_id]
            gone.append((conn_id, endpoint, rooms))
            self._drop(conn_id)
        self._by_node.pop(node, None)
        return gone

    def entry(self, conn_id: str) -> tuple[str, list[str]] | None:
        """A remote connection's (endpoint, rooms), or None when it is not known."""
        found = self._entries.get(conn_id)
        return None if found is None else (found[1], found[2])

    def meta_of(self, conn_id: str, room: str) -> Any:
        """The metadata a remote connection joined ``room`` with (None when none)."""
        return self._meta.get(conn_id, {}).get(room)

    def _drop(self, conn_id: str) -> None:
        self._meta.pop(conn_id, None)
        node, endpoint, _ = self._entries.pop(conn_id)
        for index, key in ((self._by_node, node), (self._by_endpoint, endpoint)):
            ids = index.get(key)
            if ids is not None:
                ids.discard(conn_id)
                if not ids:
                    del index[key]

    def members(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of remote connections, optionally of one endpoint and room."""
        ids = self._entries if endpoint is None else self._by_endpoint.get(endpoint, ())
        if room is None:
            return list(ids)
        entries = self._entries
        return [cid for cid in ids if room in entries[cid][2]]
