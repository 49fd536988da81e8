"""A minimal HTTP/1.1 client over a real socket, for tests: one request, one parsed reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from tests.timing import eventually, seconds


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def request(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Reply:
    """Send one request with ``Connection: close`` and read the whole reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    raw = await asyncio.wait_for(reader.read(), seconds(5))
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        rest = dechunk(rest)
    return Reply(int(status_line.split()[1]), parsed, rest)


async def answering(
    port: int, path: str = "/", *, exited: Callable[[], bool] = lambda: False, timeout: float = 15
) -> Reply:
    """Wait until a server starting on ``port`` answers ``GET path`` (connections refused
    meanwhile are retried, for at most ``seconds(timeout)``); its reply. ``exited()`` true
    fails at once (the server process is gone)."""
    reply: Reply | None = None

    async def answered() -> bool:
        nonlocal reply
        assert not exited(), "the server exited"
        try:
            reply = await request(port, "GET", path)
        except OSError:
            return False
        return True

    await eventually(answered, timeout, f"an answer on port {port}")
    assert reply is not None
    return reply


def dechunk(data: bytes) -> bytes:
    """The body of a chunked transfer encoding."""
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


async def read_response(
    reader: asyncio.StreamReader, method: str = "GET", *, timeout: float = 5
) -> Reply:
    """Read exactly one response off ``reader``, framed as RFC 9112 section 6.3 says, so that
    the next response on a keep-alive connection can be read after it. ``method`` is the
    request's: a response to HEAD has no body, whatever its headers say."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        assert key not in parsed, f"header {key!r} sent twice in {head!r}"
        parsed[key] = value.strip()
    if method == "HEAD" or status < 200 or status in (204, 304):
        return Reply(status, parsed, b"")
    if parsed.get("transfer-encoding") == "chunked":
        chunks = []
        while True:
            size_line = await asyncio.wait_for(reader.readline(), timeout)
            size = int(size_line.strip(), 16)
            data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            assert data.endswith(b"\r\n"), data[-10:]
            if size == 0:
                break
            chunks.append(data[:-2])
        return Reply(status, parsed, b"".join(chunks))
    if "content-length" in parsed:
        length = int(parsed["content-length"])
        return Reply(status, parsed, await asyncio.wait_for(reader.readexactly(length), timeout))
    return Reply(status, parsed, await asyncio.wait_for(reader.read(), timeout))


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive request without a body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
