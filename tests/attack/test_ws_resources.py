"""WebSocket buffers under a peer that sends forever or never reads."""

from __future__ import annotations

import socket
import time

import pytest

from tests.timing import seconds

from .conftest import rss_mb
from .wsraw import frame, open_ws


def _blast(
    sock: socket.socket, chunk: bytes, seconds: float, max_frames: int, per_chunk: int
) -> int:
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and sent < max_frames:
            sock.sendall(chunk)
            sent += per_chunk
    except OSError:
        pass  # the server closed the connection: that is an acceptable answer
    return sent


@pytest.mark.soak
def test_empty_continuation_frames_do_not_grow_memory(target):
    """A message made of millions of empty fragments stays under max_message_size (its size is
    1 byte) but must not cost the server memory per fragment. Expected: RSS stays within a few
    MiB of its warm level (or the server closes the connection)."""
    warm = rss_mb(target.pid)
    s, head = open_ws(target.port, "/open")
    assert b" 101 " in head
    s.sendall(frame(1, b"a", fin=False))
    batch = 2000
    chunk = frame(0, b"", fin=False) * batch
    _blast(s, chunk, seconds=10, max_frames=4_000_000, per_chunk=batch)
    grown = rss_mb(target.pid) - warm
    s.close()
    assert grown < 10, f"server RSS grew by {grown:.0f} MiB from empty continuation frames"


@pytest.mark.soak
def test_memory_from_empty_fragments_returns_after_close(target):
    """Whatever the fragments cost, closing the connection must give it back."""
    warm = rss_mb(target.pid)
    s, _ = open_ws(target.port, "/open")
    s.sendall(frame(1, b"a", fin=False))
    batch = 2000
    _blast(s, frame(0, b"", fin=False) * batch, seconds=8, max_frames=3_000_000, per_chunk=batch)
    s.close()
    time.sleep(2)
    after = rss_mb(target.pid) - warm
    assert after < 10, f"server RSS still {after:.0f} MiB above warm after the connection closed"


def _deflate(data: bytes) -> bytes:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


@pytest.mark.soak
def test_compressed_messages_respect_max_queue(target):
    """/q1 has max_queue=1 and a handler that takes one message and then waits. 250 compressed
    messages of 1 MB each (under max_message_size) are ~250 KB on the wire. Expected: roost stops
    reading at the queue limit, so it holds about one inflated message, not one per message
    found in a socket read."""
    warm = rss_mb(target.pid)
    s, head = open_ws(target.port, "/q1", extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert b"permessage-deflate" in head
    one = frame(2, _deflate(b"\x00" * 1_000_000), rsv=4)
    s.sendall(one * 250)
    peak = warm
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.05)
        peak = max(peak, rss_mb(target.pid))
    s.close()
    assert peak - warm < 16, (
        f"{len(one) * 250} bytes on the wire made the server hold {peak - warm:.0f} MiB"
    )


@pytest.mark.soak
def test_deflate_churn_returns_to_warm_rss(target):
    """Open, use and close compressed connections one at a time (the `websockets` client offers
    permessage-deflate, as browsers do). Expected: RSS comes back near its warm level, as it does
    for the same churn without compression."""
    import asyncio

    import websockets

    async def churn(n: int) -> None:
        for _ in range(n):
            async with websockets.connect(f"ws://127.0.0.1:{target.port}/open") as ws:
                await ws.send("hello " * 100)
                await asyncio.wait_for(ws.recv(), seconds(5))

    asyncio.run(churn(200))
    time.sleep(1)
    warm = rss_mb(target.pid)
    asyncio.run(churn(2000))
    time.sleep(2)
    grown = rss_mb(target.pid) - warm
    assert grown < 15, (
        f"RSS {grown:.0f} MiB above warm after 2000 sequential compressed connections"
    )
