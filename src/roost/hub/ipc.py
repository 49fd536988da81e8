"""The embedded broker for ``--processes N``: workers on one machine exchange hub messages
through a relay process over a Unix socket. No external server is needed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct

import orjson

from roost.hub.broker import Broker, Deliver

logger = logging.getLogger("roost.hub")
_LEN = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024


class _Framed(asyncio.Protocol):
    """Length-prefixed frames over a stream."""

    def __init__(self, on_frame: Deliver, on_lost: object = None) -> None:
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (size,) = _LEN.unpack_from(self.buf)
            if size > MAX_FRAME:
                if self.transport is not None:
                    self.transport.abort()
                return
            if len(self.buf) < 4 + size:
                return
            frame = bytes(self.buf[4 : 4 + size])
            del self.buf[: 4 + size]
            self.on_frame(frame)

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_LEN.pack(len(frame)) + frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if callable(self.on_lost):
            self.on_lost(self)


class IpcBroker(Broker):
    """A worker's side: connects to the relay at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._proto: _Framed | None = None
        self._lost_logged = False

    async def start(self, node_id: str, deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_unix_connection(
            lambda: _Framed(deliver, self._lost), self.path
        )
        self._proto = proto

    def _lost(self, proto: _Framed) -> None:
        if not self._lost_logged:
            self._lost_logged = True
            logger.error("lost the connection to the worker relay: other workers unreachable")

    def publish(self, message: bytes) -> None:
        if self._proto is not None:
            self._proto.send(message)

    async def stop(self, node_id: str) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


async def relay(sock: socket.socket) -> None:
    """Forward every frame from one worker to all the others; announce workers that leave."""
    peers: dict[_Framed, str] = {}

    def make() -> _Framed:
        proto: _Framed

        def on_frame(frame: bytes) -> None:
            if not peers.get(proto):
                with contextlib.suppress(orjson.JSONDecodeError):
                    peers[proto] = str(orjson.loads(frame).get("n", ""))
            for other in list(peers):
                if other is not proto:
                    other.send(frame)

        def on_lost(_: _Framed) -> None:
            node = peers.pop(proto, "")
            if node:
                gone = orjson.dumps({"t": "gone", "n": node})
                for other in list(peers):
                    other.send(gone)

        proto = _Framed(on_frame, on_lost)
        peers[proto] = ""
        return proto

    server = await asyncio.get_running_loop().create_unix_server(make, sock=sock)
    async with server:
        await server.serve_forever()
