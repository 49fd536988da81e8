"""The connections of one process: id -> channel, endpoints, rooms, and local delivery; and
the replicated index of other nodes' connections (``RemotePresence``)."""

from __future__ import annotations

from roost.protocol.connection import SharedMessage
from roost.server.stats import Histogram
from roost.server.websocket import WebSocketChannel

#: Upper bounds of the histogram of connections reached per broadcast.
DELIVERY_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000)


class Registry:
    """Local connections by id, by endpoint and by room (rooms are scoped to an endpoint).

    Delivery is at-most-once: a message to a connection whose buffer is over its limit is
    dropped or closes that connection, as its slow-consumer policy says.
    """

    def __init__(self) -> None:
        self._channels: dict[str, WebSocketChannel] = {}
        self._endpoint_of: dict[str, str] = {}
        self._endpoints: dict[str, dict[str, WebSocketChannel]] = {}
        self._rooms: dict[tuple[str, str], dict[str, WebSocketChannel]] = {}
        self._rooms_of: dict[str, set[str]] = {}
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

    def counts(self) -> dict[str, int]:
        """Endpoint path -> its open local connections."""
        return {endpoint: len(members) for endpoint, members in self._endpoints.items()}

    def endpoint_of(self, conn_id: str) -> str | None:
        """The endpoint path a local connection belongs to."""
        return self._endpoint_of.get(conn_id)

    def join(self, conn_id: str, room: str) -> None:
        """Put a local connection in ``room`` of its endpoint."""
        channel = self._channels.get(conn_id)
        if channel is None:
            return
        endpoint = self._endpoint_of[conn_id]
        self._rooms.setdefault((endpoint, room), {})[conn_id] = channel
        self._rooms_of.setdefault(conn_id, set()).add(room)

    def leave(self, conn_id: str, room: str) -> None:
        """Take a local connection out of ``room``."""
        rooms = self._rooms_of.get(conn_id)
        if rooms is None or room not in rooms:
            return
        rooms.discard(room)
        self._leave(self._endpoint_of[conn_id], room, conn_id)

    def _leave(self, endpoint: str, room: str, conn_id: str) -> None:
        members = self._rooms.get((endpoint, room))
        if members is not None:
            members.pop(conn_id, None)
            if not members:
                del self._rooms[(endpoint, room)]

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
    ) -> int:
        """Send to every local connection of ``endpoint`` (or of its ``room``); the count sent.

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
        if exclude is None:
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

    def update(self, node: str, conn_id: str, entry: tuple[str, list[str]] | None) -> None:
        """Record ``node``'s connection ``conn_id`` with its (endpoint, rooms), or with None
        forget it (only if it was recorded for ``node``)."""
        old = self._entries.get(conn_id)
        if entry is None:
            if old is not None and old[0] == node:
                self._drop(conn_id)
            return
        if old is not None:
            self._drop(conn_id)
        endpoint, rooms = entry
        self._entries[conn_id] = (node, endpoint, list(rooms))
        self._by_node.setdefault(node, set()).add(conn_id)
        self._by_endpoint.setdefault(endpoint, set()).add(conn_id)

    def replace(self, node: str, entries: dict[str, tuple[str, list[str]]]) -> None:
        """Make ``entries`` (id -> (endpoint, rooms)) the whole presence of ``node``."""
        self.forget(node)
        for conn_id, entry in entries.items():
            self.update(node, conn_id, entry)

    def forget(self, node: str) -> None:
        """Forget every connection of ``node`` (it left or died)."""
        for conn_id in list(self._by_node.get(node, ())):
            self._drop(conn_id)
        self._by_node.pop(node, None)

    def _drop(self, conn_id: str) -> None:
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
