"""A raw WebSocket client for tests that must misbehave: hand-built frames over asyncio streams."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

from roost.protocol.frames import encode_frame
from tests.timing import seconds

TIMEOUT = 5


async def connect(
    port: int, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a TCP connection, send an upgrade request, return the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(TIMEOUT))
    return reader, writer, head


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = True
) -> bytes:
    """A client frame, masked unless ``masked=False``."""
    return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=os.urandom(4) if masked else None)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame: (opcode, payload)."""
    b0, payload = await read_raw_frame(reader)
    return b0 & 0x0F, payload


async def read_raw_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame: (its first byte, with FIN, RSV1 and the opcode; payload)."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), seconds(TIMEOUT))
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0, await reader.readexactly(length)


async def read_close(reader: asyncio.StreamReader) -> int:
    """Skip data frames until the close frame; return its code."""
    while True:
        opcode, payload = await read_frame(reader)
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


async def raw_request(port: int, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), seconds(TIMEOUT))
    finally:
        writer.close()


async def never_reading_client(port: int, path: str) -> socket.socket:
    """A client that completes the handshake, then reads nothing more (tiny receive buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: nothing past the head is read
    assert head.startswith(b"HTTP/1.1 101")
    return sock
