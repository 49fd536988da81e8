"""Raw WebSocket frames for attack tests."""

from __future__ import annotations

import os
import socket
import struct


def frame(
    opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Sock(socket.socket):
    leftover = b""


def open_ws(
    port: int, path: str, extra: str = "", rcvbuf: int | None = None, timeout: float = 5
) -> tuple[Sock, bytes]:
    s = Sock()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    s.leftover = rest
    return s, head


def flood(sock: socket.socket, unit: bytes, seconds: float, max_bytes: int) -> int:
    """Send whole copies of ``unit`` (never a torn frame) until the time or byte budget runs
    out or the socket stops accepting; returns the bytes sent."""
    import time

    sock.setblocking(False)
    sent = 0
    pending = memoryview(b"")
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and sent < max_bytes:
            if not pending:
                pending = memoryview(unit)
            try:
                n = sock.send(pending)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            sent += n
            pending = pending[n:]
    except OSError:
        pass
    finally:
        sock.setblocking(True)
    return sent
