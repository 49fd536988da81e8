"""Helpers of the attack3 tests: a client that logs everything it sees in order (and checks
the promises of docs/delivery.md on that log), clients pinned to a worker, and RSS."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from tests.timing import eventually, seconds

NOTICES = ("joined", "recovered", "not_recovered")


@dataclass
class Recorder:
    """A resuming client (like tests/history_client.py) that keeps one ordered log of what
    it saw: ("connect", url), ("notice", dict), ("message", dict), ("other", value)."""

    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    log: list[tuple[str, Any]] = field(default_factory=list)
    ws: websockets.ClientConnection | None = None
    pid: int = 0
    id: str = ""

    def url(self, base: str) -> str:
        if not self.positions:
            return base
        value = json.dumps({room: [e, o] for room, (e, o) in self.positions.items()})
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}roost_resume={urllib.parse.quote(value)}"

    async def connect(self, base: str, **kwargs: Any) -> None:
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("ping_interval", None)
        url = self.url(base)
        self.ws = await websockets.connect(url, **kwargs)
        self.log.append(("connect", url))
        hello = await self.recv()
        assert isinstance(hello, dict) and "id" in hello, hello
        self.pid, self.id = int(hello.get("pid", 0)), str(hello["id"])

    def take(self, raw: str | bytes) -> Any:
        if isinstance(raw, bytes):
            self.log.append(("other", raw))
            return raw
        try:
            value = json.loads(raw)
        except ValueError:
            self.log.append(("other", raw))
            return raw
        kind = value.get("roost") if isinstance(value, dict) else None
        if kind == "message":
            self.log.append(("message", value))
            self.positions[value["room"]] = (value["epoch"], value["offset"])
        elif kind in NOTICES:
            self.log.append(("notice", value))
            self.positions[value["room"]] = (value["epoch"], value["offset"])
        else:
            self.log.append(("other", value))
        return value

    async def recv(self, timeout: float = 10) -> Any:
        assert self.ws is not None
        return self.take(await asyncio.wait_for(self.ws.recv(), seconds(timeout)))

    async def drain(self, quiet: float = 0.3) -> None:
        """Read until nothing arrives for ``quiet`` seconds."""
        assert self.ws is not None
        while True:
            try:
                self.take(await asyncio.wait_for(self.ws.recv(), quiet))
            except TimeoutError:
                return

    async def read_until(self, done: Any, what: str, timeout: float = 20) -> None:
        async def loop() -> None:
            while not done():
                await self.recv(timeout)

        try:
            await asyncio.wait_for(loop(), seconds(timeout))
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; log tail {self.tail()}") from None

    def messages(self, room: str | None = None) -> list[dict[str, Any]]:
        return [v for k, v in self.log if k == "message" and (room is None or v["room"] == room)]

    def notices(self, room: str | None = None) -> list[dict[str, Any]]:
        return [v for k, v in self.log if k == "notice" and (room is None or v["room"] == room)]

    def others(self) -> list[Any]:
        return [v for k, v in self.log if k == "other"]

    def tail(self, n: int = 6) -> list[Any]:
        return [(k, _short(v)) for k, v in self.log[-n:]]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def abort(self) -> None:
        """Drop the connection without a close frame (the network went away)."""
        assert self.ws is not None
        self.ws.transport.abort()


def _short(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("data"), str) and len(value["data"]) > 20:
        return {**value, "data": value["data"][:20] + "..."}
    return value


def violations(log: list[tuple[str, Any]], room: str) -> list[str]:
    """Where a log breaks docs/delivery.md for ``room``: after each connect the first item of
    the room is a notice; a ``recovered`` notice continues from the position the client had;
    each message follows the previous item of the room at offset + 1 of the same epoch (a
    new epoch, or any gap, must come after a notice); no position is delivered twice."""
    found: list[str] = []
    position: tuple[str, int] | None = None  # the client's position in the room
    expect_notice = False
    seen: set[tuple[str, int]] = set()
    for index, (kind, value) in enumerate(log):
        if kind == "connect":
            expect_notice = True
            continue
        if kind not in ("notice", "message") or value["room"] != room:
            continue
        here = (value["epoch"], value["offset"])
        if kind == "notice":
            if value["roost"] == "recovered" and position is not None and here != position:
                found.append(f"#{index}: recovered at {here}, the client was at {position}")
            position = here
            expect_notice = False
            continue
        if expect_notice:
            found.append(f"#{index}: message {here} before any notice on this connection")
            expect_notice = False
        if here in seen:
            found.append(f"#{index}: message {here} delivered again")
        seen.add(here)
        if position is not None and here != (position[0], position[1] + 1):
            found.append(f"#{index}: message {here} follows {position} with no notice")
        position = here
    return found


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def pinned(url: str, pids: int = 2, batch: int = 8, tries: int = 40) -> dict[int, Recorder]:
    """One connected Recorder per worker process (by pid): connect in batches, keep the first
    on each worker, close the rest."""
    by_pid: dict[int, Recorder] = {}
    for _ in range(tries):
        batch_clients = [Recorder() for _ in range(batch)]
        await asyncio.gather(*(c.connect(url) for c in batch_clients))
        for c in batch_clients:
            if c.pid in by_pid or len(by_pid) == pids:
                await c.close()
            else:
                by_pid[c.pid] = c
        if len(by_pid) == pids:
            return by_pid
    raise AssertionError(f"connections reached only workers {sorted(by_pid)}")


__all__ = ["Recorder", "eventually", "pinned", "rss_kib", "violations"]


async def stalled_after(port: int, path: str, frames: int) -> tuple[Any, list[bytes]]:
    """A raw client that completes the handshake with a tiny receive buffer, reads exactly
    ``frames`` server frames (unmasked text, up to 64 KiB each), then reads nothing more.
    Returns the socket (close it when done) and the payloads read."""
    import socket
    import struct

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

    async def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, n - len(data)), seconds(30))
            if not chunk:
                raise AssertionError("the server closed the connection")
            data += chunk
        return data

    head = b""
    while b"\r\n\r\n" not in head:
        head += await exactly(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payloads = []
    for _ in range(frames):
        _, b1 = await exactly(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await exactly(8))
        payloads.append(await exactly(length))
    return sock, payloads
