"""Delivery across the deployment: the local registry, plus a broker when there is one."""

from __future__ import annotations

import asyncio
import logging
import os

from roost.hub import messages
from roost.hub.broker import Broker
from roost.hub.messages import Codec, Undecodable
from roost.hub.registry import Registry, RemotePresence
from roost.server.websocket import WebSocketChannel

logger = logging.getLogger("roost.hub")


class Hub:
    """What the app calls to reach connections by endpoint, room or id, wherever they are.

    Without a broker only this process's connections exist (the embedded default). With
    one, every call reaches every node; each node fans out to its own connections.
    """

    def __init__(self, broker: Broker | None = None, *, codec: Codec | None = None) -> None:
        self.registry = Registry()
        self.broker = broker
        self.node_id = os.urandom(8).hex()
        self._remote = RemotePresence()  # other nodes' connections, for replicated brokers
        self._codec = codec or Codec()
        self._unreadable: set[tuple[str, str]] = set()  # (node, reason) already logged
        #: Messages handed to the broker (whether or not it could send them on).
        self.published = 0

    # -- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the broker, if any (called when the server starts)."""
        self.node_id = os.urandom(8).hex()  # per process: workers are forked from one app
        if self.broker is not None:
            self.broker.on_reconnect(self._relinked)
            await self.broker.start(self.node_id, self._deliver)
            self._announce()

    async def stop(self) -> None:
        """Leave the broker, if any (called after shutdown)."""
        if self.broker is not None:
            self._publish(messages.Gone())
            await asyncio.sleep(0)
            await self.broker.stop(self.node_id)

    def _announce(self) -> None:
        """Tell the other nodes this one is here (with its connections, when presence is
        replicated through messages); each answers with its own state."""
        hello = messages.Hello()
        if self.broker is not None and self.broker.replicated_presence:
            hello.connections = self._local_state()
        self._publish(hello)

    def _relinked(self) -> None:
        """The broker's link came back after an outage. What other nodes published meanwhile
        is lost (a node may even have gone), so forget them and announce this one again."""
        self._remote = RemotePresence()
        self._announce()

    def _local_state(self) -> dict[str, tuple[str, list[str]]]:
        registry = self.registry
        state: dict[str, tuple[str, list[str]]] = {}
        for cid in registry.members():
            endpoint = registry.endpoint_of(cid)
            if endpoint is not None:
                state[cid] = (endpoint, sorted(registry.rooms_of(cid)))
        return state

    def _publish(self, message: messages.Message) -> None:
        if self.broker is not None:
            message.n = self.node_id
            self.published += 1
            self.broker.publish(self._codec.encode(message))

    def _presence_changed(self, conn_id: str) -> None:
        broker = self.broker
        if broker is None:
            return
        endpoint = self.registry.endpoint_of(conn_id)
        entry = None if endpoint is None else (endpoint, sorted(self.registry.rooms_of(conn_id)))
        if broker.replicated_presence:
            if entry is None:
                self._publish(messages.Presence(id=conn_id))
            else:
                self._publish(messages.Presence(id=conn_id, endpoint=entry[0], rooms=entry[1]))
        else:
            broker.presence_update(conn_id, entry)

    # -- local connections -------------------------------------------------------------------

    def add(self, conn_id: str, endpoint: str, channel: WebSocketChannel) -> None:
        """A connection opened here."""
        self.registry.add(conn_id, endpoint, channel)
        self._presence_changed(conn_id)

    def remove(self, conn_id: str) -> None:
        """A connection here ended."""
        if conn_id in self.registry:
            self.registry.remove(conn_id)
            self._presence_changed(conn_id)

    def rooms_of(self, conn_id: str) -> frozenset[str]:
        """The rooms of a local connection."""
        return self.registry.rooms_of(conn_id)

    # -- delivery ----------------------------------------------------------------------------

    async def broadcast(
        self,
        endpoint: str,
        data: str | bytes,
        *,
        room: str | None = None,
        exclude: str | None = None,
    ) -> int:
        """Deliver to every connection of ``endpoint`` (or its ``room``); the local count."""
        sent = self.registry.broadcast(endpoint, data, room=room, exclude=exclude)
        if self.broker is not None:
            text, binary = (data, None) if isinstance(data, str) else (None, bytes(data))
            self._publish(
                messages.Broadcast(
                    endpoint=endpoint, room=room, exclude=exclude, text=text, binary=binary
                )
            )
        return sent

    async def send_to(self, conn_id: str, data: str | bytes) -> bool:
        """Deliver to one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            return self.registry.send_to(conn_id, data)
        if self.broker is None:
            return False
        if isinstance(data, str):
            self._publish(messages.SendTo(id=conn_id, text=data))
        else:
            self._publish(messages.SendTo(id=conn_id, binary=bytes(data)))
        return await self._known(conn_id)

    async def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            return self.registry.disconnect(conn_id, code, reason)
        if self.broker is None:
            return False
        self._publish(messages.Disconnect(id=conn_id, code=code, reason=reason))
        return await self._known(conn_id)

    async def join(self, conn_id: str, room: str) -> None:
        """Put a connection in a room."""
        if conn_id in self.registry:
            self.registry.join(conn_id, room)
            self._presence_changed(conn_id)
        else:
            self._publish(messages.Join(id=conn_id, room=room))

    async def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of a room."""
        if conn_id in self.registry:
            self.registry.leave(conn_id, room)
            self._presence_changed(conn_id)
        else:
            self._publish(messages.Leave(id=conn_id, room=room))

    # -- presence ----------------------------------------------------------------------------

    async def _known(self, conn_id: str) -> bool:
        """Whether a connection not in this process is on another node: one index lookup
        (replicated presence) or one O(1) broker query, whatever the number of connections."""
        broker = self.broker
        if broker is None:
            return False
        if broker.replicated_presence:
            return conn_id in self._remote
        node = await broker.presence_node(conn_id)
        return node is not None and node != self.node_id

    async def connections(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of open connections across the deployment (presence), optionally of one
        endpoint and room."""
        ids = self.registry.members(endpoint, room)
        broker = self.broker
        if broker is None:
            return ids
        if broker.replicated_presence:
            ids.extend(self._remote.members(endpoint, room))
            return ids
        registry = self.registry
        for cid, (ep, rooms) in (await broker.presence_all()).items():
            if cid in registry:
                continue
            if (endpoint is None or ep == endpoint) and (room is None or room in rooms):
                ids.append(cid)
        return ids

    # -- messages from other nodes -----------------------------------------------------------

    def _deliver(self, raw: bytes) -> None:
        try:
            message = self._codec.decode(raw)
        except Undecodable as exc:
            if exc.node != self.node_id:  # brokers may echo a node's own messages
                self._undecodable(exc)
            return
        if message.n == self.node_id:
            return
        try:
            self._apply(message)
        except Exception:
            logger.exception("could not apply a %s message from node %s", type(message), message.n)

    def _undecodable(self, exc: Undecodable) -> None:
        """Log once per sending node and reason: a node of another version keeps talking."""
        key = (exc.node, exc.reason)
        if key in self._unreadable:
            return
        if len(self._unreadable) < 1024:
            self._unreadable.add(key)
        if exc.version is not None:
            logger.warning(
                "ignoring messages from node %s: it speaks hub envelope version %d, this node "
                "speaks %d (a rolling upgrade in progress?)",
                exc.node or "?",
                exc.version,
                messages.VERSION,
            )
        else:
            logger.warning("ignoring a hub message from node %s: %s", exc.node or "?", exc.reason)

    def _apply(self, message: messages.Message) -> None:
        registry = self.registry
        node = message.n
        match message:
            case messages.Broadcast():
                data = _payload(message.text, message.binary)
                if data is not None:
                    registry.broadcast(
                        message.endpoint, data, room=message.room, exclude=message.exclude
                    )
            case messages.SendTo():
                data = _payload(message.text, message.binary)
                if data is not None:
                    registry.send_to(message.id, data)
            case messages.Disconnect():
                registry.disconnect(message.id, message.code, message.reason)
            case messages.Join() | messages.Leave() if message.id in registry:
                if isinstance(message, messages.Join):
                    registry.join(message.id, message.room)
                else:
                    registry.leave(message.id, message.room)
                self._presence_changed(message.id)
            case messages.Presence():
                entry = None if message.endpoint is None else (message.endpoint, message.rooms)
                self._remote.update(node, message.id, entry)
            case messages.Hello():
                self._remote.replace(node, dict(message.connections))
                if self.broker is not None and self.broker.replicated_presence:
                    self._publish(messages.State(to=node, connections=self._local_state()))
            case messages.State() if message.to == self.node_id:
                self._remote.replace(node, dict(message.connections))
            case messages.Gone():
                self._remote.forget(node)


def _payload(text: str | None, binary: bytes | None) -> str | bytes | None:
    return text if text is not None else binary
