"""Delivery across the deployment: the local registry, plus a broker when there is one."""

from __future__ import annotations

from roost.hub.registry import Registry
from roost.server.connection import WebSocketChannel


class Hub:
    """What the app calls to reach connections by endpoint, room or id.

    With no broker, only this process's connections exist (the embedded default).
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()

    async def start(self) -> None:
        """Connect to the broker, if any (called when the server starts)."""

    async def stop(self) -> None:
        """Disconnect from the broker, if any (called after shutdown)."""

    def add(self, conn_id: str, endpoint: str, channel: WebSocketChannel) -> None:
        """A connection opened here."""
        self.registry.add(conn_id, endpoint, channel)

    def remove(self, conn_id: str) -> None:
        """A connection here ended."""
        self.registry.remove(conn_id)

    async def broadcast(
        self,
        endpoint: str,
        data: str | bytes,
        *,
        room: str | None = None,
        exclude: str | None = None,
    ) -> int:
        """Deliver to every connection of ``endpoint`` (or its ``room``); the local count."""
        return self.registry.broadcast(endpoint, data, room=room, exclude=exclude)

    async def send_to(self, conn_id: str, data: str | bytes) -> bool:
        """Deliver to one connection; whether it was found open (locally)."""
        return self.registry.send_to(conn_id, data)

    async def disconnect(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close one connection; whether it was found (locally)."""
        return self.registry.disconnect(conn_id, code, reason)

    async def join(self, conn_id: str, room: str) -> None:
        """Put a connection in a room."""
        self.registry.join(conn_id, room)

    async def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of a room."""
        self.registry.leave(conn_id, room)

    def rooms_of(self, conn_id: str) -> frozenset[str]:
        """The rooms of a local connection."""
        return self.registry.rooms_of(conn_id)

    async def connections(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of open connections (presence), optionally of one endpoint and room."""
        return self.registry.members(endpoint, room)
