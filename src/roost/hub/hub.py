"""Delivery across the deployment: the local registry, plus a broker when there is one."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from typing import Any

import orjson

from roost.hub.broker import Broker
from roost.hub.registry import Registry, RemotePresence
from roost.server.websocket import WebSocketChannel

logger = logging.getLogger("roost.hub")


def _pack(data: str | bytes) -> dict[str, str]:
    if isinstance(data, str):
        return {"s": data}
    return {"b": base64.b64encode(data).decode("ascii")}


def _unpack(msg: dict[str, Any]) -> str | bytes:
    if "s" in msg:
        return str(msg["s"])
    return base64.b64decode(msg["b"])


class Hub:
    """What the app calls to reach connections by endpoint, room or id, wherever they are.

    Without a broker only this process's connections exist (the embedded default). With
    one, every call reaches every node; each node fans out to its own connections.
    """

    def __init__(self, broker: Broker | None = None) -> None:
        self.registry = Registry()
        self.broker = broker
        self.node_id = os.urandom(8).hex()
        self._remote = RemotePresence()  # other nodes' connections, for replicated brokers

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
            self._publish({"t": "gone"})
            await asyncio.sleep(0)
            await self.broker.stop(self.node_id)

    def _announce(self) -> None:
        """Tell the other nodes this one is here (with its connections, when presence is
        replicated through messages); each answers with its own state."""
        hello: dict[str, Any] = {"t": "hello"}
        if self.broker is not None and self.broker.replicated_presence:
            hello["c"] = self._local_state()
        self._publish(hello)

    def _relinked(self) -> None:
        """The broker's link came back after an outage. What other nodes published meanwhile
        is lost (a node may even have gone), so forget them and announce this one again."""
        self._remote = RemotePresence()
        self._announce()

    def _local_state(self) -> dict[str, tuple[str | None, list[str]]]:
        registry = self.registry
        return {
            cid: (registry.endpoint_of(cid), sorted(registry.rooms_of(cid)))
            for cid in registry.members()
        }

    def _publish(self, msg: dict[str, Any]) -> None:
        if self.broker is not None:
            msg["n"] = self.node_id
            self.broker.publish(orjson.dumps(msg))

    def _presence_changed(self, conn_id: str) -> None:
        broker = self.broker
        if broker is None:
            return
        endpoint = self.registry.endpoint_of(conn_id)
        entry = None if endpoint is None else (endpoint, sorted(self.registry.rooms_of(conn_id)))
        if broker.replicated_presence:
            self._publish({"t": "p", "id": conn_id, "e": entry})
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
            self._publish({"t": "bc", "ep": endpoint, "r": room, "x": exclude, **_pack(data)})
        return sent

    async def send_to(self, conn_id: str, data: str | bytes) -> bool:
        """Deliver to one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            return self.registry.send_to(conn_id, data)
        if self.broker is None:
            return False
        self._publish({"t": "to", "id": conn_id, **_pack(data)})
        return await self._known(conn_id)

    async def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one connection; whether it is known to be connected."""
        if conn_id in self.registry:
            return self.registry.disconnect(conn_id, code, reason)
        if self.broker is None:
            return False
        self._publish({"t": "dc", "id": conn_id, "c": code, "m": reason})
        return await self._known(conn_id)

    async def join(self, conn_id: str, room: str) -> None:
        """Put a connection in a room."""
        if conn_id in self.registry:
            self.registry.join(conn_id, room)
            self._presence_changed(conn_id)
        else:
            self._publish({"t": "join", "id": conn_id, "r": room})

    async def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of a room."""
        if conn_id in self.registry:
            self.registry.leave(conn_id, room)
            self._presence_changed(conn_id)
        else:
            self._publish({"t": "leave", "id": conn_id, "r": room})

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
            msg = orjson.loads(raw)
            node = msg["n"]
            if node == self.node_id:
                return
            self._apply(node, msg)
        except Exception:
            logger.exception("dropped a malformed hub message")

    def _apply(self, node: str, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        registry = self.registry
        if kind == "bc":
            registry.broadcast(msg["ep"], _unpack(msg), room=msg["r"], exclude=msg["x"])
        elif kind == "to":
            registry.send_to(msg["id"], _unpack(msg))
        elif kind == "dc":
            registry.disconnect(msg["id"], msg["c"], msg["m"])
        elif kind in ("join", "leave") and msg["id"] in registry:
            (registry.join if kind == "join" else registry.leave)(msg["id"], msg["r"])
            self._presence_changed(msg["id"])
        elif kind == "p":
            entry = msg["e"]
            self._remote.update(node, msg["id"], None if entry is None else (entry[0], entry[1]))
        elif kind == "hello":
            state = msg.get("c", {})
            self._remote.replace(node, {cid: (e[0], e[1]) for cid, e in state.items()})
            if self.broker is not None and self.broker.replicated_presence:
                self._publish({"t": "state", "to": node, "c": self._local_state()})
        elif kind == "state" and msg["to"] == self.node_id:
            self._remote.replace(node, {cid: (e[0], e[1]) for cid, e in msg["c"].items()})
        elif kind == "gone":
            self._remote.forget(node)
