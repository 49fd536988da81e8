"""roost's benchmark load generator: a raw uvloop WebSocket client, cheap per message.

Frames are built once (the mask never changes, which is fine for a benchmark), and replies
of a known size are counted by bytes rather than parsed, so that the client stays far from
being the bottleneck. Server CPU is read from /proc over exactly the measured window.

    python loadgen.py echo   --port P --pid PID [--connections 64 --size 32 --seconds 5]
    python loadgen.py fanout --port P --pid PID [--subscribers 1000 --seconds 5]
    python loadgen.py scale  --port P --pid PID [--connections 10000]

Each prints one JSON object with its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time

import uvloop

MASK = b"\x11\x22\x33\x44"
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def server_cpu(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (and its threads), plus those of its
    child processes (the workers of ``--processes N``)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            total += _cpu(p)
    return total


def server_rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def masked_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    masked = int.from_bytes(payload, "big") ^ int.from_bytes((MASK * (n // 4 + 1))[:n], "big")
    return head + MASK + masked.to_bytes(n, "big")


def reply_length(n: int) -> int:
    return n + (2 if n < 126 else 4 if n < 65536 else 10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Client(asyncio.Protocol):
    """One connection: handshake, then count replies of a known length."""

    def __init__(self, path: str, expect: int, on_reply, keep_data: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.expect = expect
        self.on_reply = on_reply
        self.keep_data = keep_data
        self.ready = asyncio.get_running_loop().create_future()
        self.head = b""
        self.pending = 0
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(self.head[:80].decode(errors="replace")))
                return
            data = self.head[end + 4 :]
            self.head = b""
            self.ready.set_result(None)
            if not data:
                return
        if self.keep_data:
            self.data += data
        self.pending += len(data)
        while self.pending >= self.expect:
            self.pending -= self.expect
            self.on_reply(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))


async def connect_many(
    port: int,
    path: str,
    count: int,
    expect: int,
    on_reply,
    batch=500,  # type: ignore[no-untyped-def]
    keep=lambda i: False,
) -> list[Client]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for start in range(0, count, batch):
        made = await asyncio.gather(
            *(
                loop.create_connection(
                    lambda i=i: Client(path, expect, on_reply, keep(i)), "127.0.0.1", port
                )
                for i in range(start, min(count, start + batch))
            )
        )
        group = [protocol for _, protocol in made]
        await asyncio.gather(*(c.ready for c in group))
        clients += group
    return clients


async def echo(args: argparse.Namespace) -> dict[str, object]:
    frame = masked_frame(b"x" * args.size)
    measuring = False
    count = 0
    latencies: list[float] = []
    sent_at: dict[Client, int] = {}
    now = time.perf_counter_ns

    def on_reply(client: Client) -> None:
        nonlocal count
        if measuring:
            count += 1
            if count % 7 == 0:
                latencies.append((now() - sent_at[client]) / 1e3)
        sent_at[client] = now()
        client.transport.write(frame)  # type: ignore[union-attr]

    clients = await connect_many(
        args.port, "/echo", args.connections, reply_length(args.size), on_reply
    )
    for client in clients:
        sent_at[client] = now()
        client.transport.write(frame)  # type: ignore[union-attr]
    await asyncio.sleep(args.warmup)
    measuring = True
    cpu0, t0, c0 = server_cpu(args.pid), time.perf_counter(), client_cpu()
    await asyncio.sleep(args.seconds)
    measuring = False
    cpu1, t1, c1 = server_cpu(args.pid), time.perf_counter(), client_cpu()
    for client in clients:
        client.transport.abort()  # type: ignore[union-attr]
    elapsed = t1 - t0
    return {
        "messages_per_s": count / elapsed,
        "messages_per_server_cpu_s": count / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / elapsed,
        "client_cpu_share": (c1 - c0) / elapsed,
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
    }


async def fanout(args: argparse.Namespace) -> dict[str, object]:
    size = 32
    expect = reply_length(size)
    received = 0
    measuring = False
    latencies: list[float] = []
    now = time.perf_counter_ns

    def on_delivery(client: Client) -> None:
        nonlocal received
        if measuring:
            received += 1
        if client.keep_data and len(client.data) >= expect:
            stamp = int(client.data[2:22])
            del client.data[:expect]
            if measuring:
                latencies.append((now() - stamp) / 1e3)

    subscribers = await connect_many(
        args.port, "/fanout", args.subscribers, expect, on_delivery, keep=lambda i: i % 50 == 0
    )

    def on_own_copy(client: Client) -> None:
        client.transport.write(masked_frame(b"%020d" % now() + b"." * 12))  # type: ignore[union-attr]

    (publisher,) = await connect_many(args.port, "/fanout", 1, expect, on_own_copy)
    subscribers_count = len(subscribers) + 1  # the publisher receives its copies too
    for _ in range(args.window):
        on_own_copy(publisher)
    await asyncio.sleep(args.warmup)
    measuring = True
    cpu0, t0, c0 = server_cpu(args.pid), time.perf_counter(), client_cpu()
    await asyncio.sleep(args.seconds)
    measuring = False
    cpu1, t1, c1 = server_cpu(args.pid), time.perf_counter(), client_cpu()
    publisher.on_reply = lambda c: None
    for client in [*subscribers, publisher]:
        client.transport.abort()  # type: ignore[union-attr]
    elapsed = t1 - t0
    return {
        "connections": subscribers_count,
        "deliveries_per_s": received / elapsed,
        "deliveries_per_server_cpu_s": received / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / elapsed,
        "client_cpu_share": (c1 - c0) / elapsed,
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
    }


async def scale(args: argparse.Namespace) -> dict[str, object]:
    await asyncio.sleep(0.5)
    rss0, cpu0, t0 = server_rss(args.pid), server_cpu(args.pid), time.perf_counter()
    clients = await connect_many(
        args.port, "/echo", args.connections, 1 << 30, lambda c: None, batch=250
    )
    cpu1, t1 = server_cpu(args.pid), time.perf_counter()
    await asyncio.sleep(2.0)  # let the server settle before reading its memory
    rss1 = server_rss(args.pid)
    for client in clients:
        client.transport.abort()  # type: ignore[union-attr]
    return {
        "connections": len(clients),
        "rss_per_connection_kb": (rss1 - rss0) / len(clients) / 1024,
        "handshakes_per_s": len(clients) / (t1 - t0),
        "handshakes_per_server_cpu_s": len(clients) / max(cpu1 - cpu0, 1e-9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["echo", "fanout", "scale"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's pid, for its CPU")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="fan-out messages in flight")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = uvloop.run({"echo": echo, "fanout": fanout, "scale": scale}[args.mode](args))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
