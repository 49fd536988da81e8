"""The WebSocket a handler holds (also exported as WebSocketAdapter): receiving, sending,
closing, and reaching other connections and rooms through the hub."""

from __future__ import annotations

import os
from typing import Any

import orjson

from roost.hub.history import Position
from roost.hub.hub import Hub
from roost.protocol.errors import WebSocketDisconnect
from roost.requests import Client, Headers, QueryParams
from roost.server.websocket import WebSocketChannel
from roost.typed import JSON, Codec, as_message

__all__ = ["WebSocket", "WebSocketAdapter", "WebSocketDisconnect"]


class WebSocket:
    """One open WebSocket connection, accepted before the handler runs.

    Receive with ``receive()``/``receive_text()``/``receive_json()``/``receive_bytes()``; each
    raises ``WebSocketDisconnect(code, reason)`` once the connection is closed. Send with
    ``send_text()``/``send_json()``/``send_bytes()``; sending on a closed connection raises
    ``WebSocketDisconnect`` too. ``send()``, ``broadcast()`` and ``send_to()`` also take typed
    values (msgspec Structs, dicts, lists...), encoded with the endpoint's ``codec`` (JSON
    text by default, or MessagePack).
    """

    __slots__ = (
        "_channel",
        "_guarded",
        "_hub",
        "client",
        "codec",
        "endpoint",
        "headers",
        "id",
        "path_params",
        "query_params",
        "resume",
        "state",
        "subprotocol",
    )

    def __init__(
        self,
        hub: Hub,
        channel: WebSocketChannel,
        *,
        endpoint: str,
        headers: Headers,
        query_params: QueryParams,
        path_params: dict[str, str],
        subprotocol: str | None = None,
        codec: Codec = JSON,
        resume: dict[str, Position] | None = None,
    ) -> None:
        self._hub = hub
        # Whether sends are checked for text that passes for roost's own messages: decided
        # once per connection, not per message.
        self._guarded = endpoint in hub.reserved
        #: The positions its client asked to resume from, per room (``roost_resume``).
        self.resume: dict[str, Position] = resume or {}
        self.codec = codec
        self._channel = channel
        self.id = new_id()
        self.endpoint = endpoint
        self.headers = headers
        self.query_params = query_params
        self.path_params = path_params
        self.client = Client(*channel.client)
        self.subprotocol = subprotocol
        self.state: dict[str, Any] = {}

    # -- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one."""
        return await self._channel.recv()

    async def receive_text(self) -> str:
        """The next message as text; a binary message is decoded as UTF-8."""
        message = await self._channel.recv()
        if type(message) is str:
            return message
        try:
            return message.decode("utf-8")  # type: ignore[union-attr]
        except UnicodeDecodeError:
            raise ValueError("received a binary message that is not valid UTF-8") from None

    async def receive_bytes(self) -> bytes:
        """The next message as bytes; a text message comes as its UTF-8 bytes."""
        message = await self._channel.recv()
        return message.encode("utf-8") if isinstance(message, str) else message

    async def receive_json(self) -> Any:
        """The next message parsed as JSON; raises ValueError for invalid JSON."""
        return orjson.loads(await self._channel.recv())

    # -- sending -----------------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a text message (on an endpoint with room history or presence events, not a
        JSON object with the key "roost": ValueError)."""
        if self._guarded:
            self._hub.check_outgoing(self.endpoint, data)
        await self._channel.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._channel.send_bytes(data)

    async def send_json(self, data: Any) -> None:
        """Send ``data`` serialized as JSON, in a text message."""
        text = orjson.dumps(data).decode("utf-8")
        if self._guarded:
            self._hub.check_outgoing(self.endpoint, text)
        await self._channel.send_text(text)

    async def send(self, data: Any) -> None:
        """Send a text message for ``str``, a binary one for ``bytes``; any other value is a
        typed value, encoded with ``codec`` (JSON text, or MessagePack binary)."""
        if type(data) is not str and type(data) is not bytes:
            data = self.codec.encode(data)
        if isinstance(data, str):
            if self._guarded:
                self._hub.check_outgoing(self.endpoint, data)
            await self._channel.send_text(data)
        else:
            await self._channel.send_bytes(data)

    async def broadcast(
        self, data: Any, room: str | None = None, exclude_self: bool = False
    ) -> int:
        """Send to every open connection of this endpoint (or of ``room``), this one included
        unless ``exclude_self`` (which a room with history ignores: its members get every
        message). Returns how many local connections it was written to. A typed
        value is encoded once, with ``codec``."""
        return await self._hub.broadcast(
            self.endpoint,
            as_message(data, self.codec),
            room=room,
            exclude=self.id if exclude_self else None,
        )

    async def send_to(self, connection_id: str, data: Any) -> bool:
        """Send to one connection by id, wherever it is connected; a typed value is encoded
        with ``codec``."""
        return await self._hub.send_to(connection_id, as_message(data, self.codec))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` (idempotent). Messages sent before are delivered
        first; ``receive*`` raises WebSocketDisconnect afterwards."""
        self._channel.close(code, reason)

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (roost also pings by itself, see ``ping_interval``)."""
        await self._channel.ping(payload)

    # -- rooms -------------------------------------------------------------------------------

    async def join(self, room: str, meta: Any = None, *, replay: int = 0) -> None:
        """Join ``room`` (scoped to this endpoint), with ``meta``: any JSON value of at most
        4 KiB (a user name, say), which ``presence`` reports. In a room with history this
        first sends what the client missed since the position it resumes from, or when it
        resumes from none the last ``replay`` messages (docs/delivery.md); it returns once
        those are queued, and live messages follow with no gap and no duplicate."""
        await self._hub.join(self.id, room, meta, replay)

    async def presence(self, room: str) -> dict[str, Any]:
        """The members of ``room`` of this endpoint on every process and machine: connection
        id -> the metadata it joined with (None when none)."""
        return await self._hub.presence(self.endpoint, room)

    async def leave(self, room: str) -> None:
        """Leave ``room``."""
        await self._hub.leave(self.id, room)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        return self._hub.rooms_of(self.id)

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent."""
        return self._channel.open

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closing or closed, else None."""
        return self._channel.close_code

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.endpoint}>"


WebSocketAdapter = WebSocket


def new_id() -> str:
    """A random UUID4 string (RFC 9562 section 5.4), without building a ``uuid.UUID``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
