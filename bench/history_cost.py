"""What room history costs per delivery: a broadcast to a room of 1,000 connections, with and
without history, in one roost process (or through Redis with ``--redis URL``), runs
alternating so that both see the same machine.

    bench/.venv/bin/python bench/history_cost.py [--subscribers 1000 --size 480 --rounds 3]
    bench/.venv/bin/python bench/history_cost.py --redis redis://127.0.0.1:6379/0
    bench/.venv/bin/python bench/history_cost.py --redis redis://127.0.0.1:6379/0 \
        --publishers 16 --window 1

A publisher connection sends a message and, for each copy of its own it receives back, sends
the next one (``--window`` in flight); with ``--publishers N``, N connections do so, each
recognising its own messages by a tag. The subscribers count the frames they receive. Server
CPU is read from /proc over each measured window. Prints one line per run and a summary: the
deliveries per server CPU-second with and without history, and the extra CPU per delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import uvloop

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")
MASK = b"\x11\x22\x33\x44"


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def masked(payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


class Counter(asyncio.Protocol):
    """Handshake, then count the frames received (headers only are read)."""

    def __init__(self, path: str, on_frame) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.on_frame = on_frame
        self.ready = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.tag = b""  # a publisher's, among several: its own messages carry it
        self.own = 0  # frames with the tag in the last data received

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(buf[:80]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        pos, end, frames = 0, len(buf), 0
        while end - pos >= 2:
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos < head + n:
                break
            if self.tag and buf.find(self.tag, pos + head, pos + head + n) >= 0:
                self.own += 1
            pos += head + n
            frames += 1
        del buf[:pos]
        if frames:
            self.on_frame(self, frames)


async def connect(port: int, path: str, count: int, on_frame) -> list[Counter]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    clients: list[Counter] = []
    for start in range(0, count, 250):
        made = await asyncio.gather(
            *(
                loop.create_connection(lambda: Counter(path, on_frame), "127.0.0.1", port)
                for _ in range(start, min(count, start + 250))
            )
        )
        group = [p for _, p in made]
        await asyncio.gather(*(c.ready for c in group))
        clients += group
    return clients


async def run_once(port: int, pid: int, path: str, args: argparse.Namespace) -> dict[str, float]:
    received = 0
    measuring = False

    def count(client: Counter, frames: int) -> None:
        nonlocal received
        if measuring:
            received += frames

    subscribers = await connect(port, path, args.subscribers, count)
    frames_of: dict[Counter, bytes] = {}

    def on_own(client: Counter, frames: int) -> None:
        count(client, frames)
        assert client.transport is not None
        own, client.own = (client.own, 0) if client.tag else (frames, 0)
        if client in frames_of:  # not before it publishes (a history room's "joined")
            client.transport.write(frames_of[client] * own)

    publishers = await connect(port, path, args.publishers, on_own)
    for number, publisher in enumerate(publishers):
        if args.publishers > 1:
            publisher.tag = b"p%05d:" % number
        frames_of[publisher] = masked((publisher.tag + b"x" * args.size)[: args.size])
    await asyncio.sleep(0.3)  # every join done (a history room sends its "joined" first)
    for publisher in publishers:
        assert publisher.transport is not None
        publisher.transport.write(frames_of[publisher] * args.window)
    await asyncio.sleep(args.warmup)
    measuring = True
    cpu0, me0, t0 = server_cpu(pid), own_cpu(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    measuring = False
    cpu1, me1, t1 = server_cpu(pid), own_cpu(), time.perf_counter()
    for publisher in publishers:
        publisher.on_frame = lambda c, f: None
    for c in [*subscribers, *publishers]:
        assert c.transport is not None
        c.transport.abort()
    await asyncio.sleep(0.5)  # the server lets go of them before the next run
    elapsed = t1 - t0
    return {
        "deliveries_per_s": received / elapsed,
        "per_server_cpu_s": received / max(cpu1 - cpu0, 1e-9),
        "server_cpu": (cpu1 - cpu0) / elapsed,
        "client_cpu": (me1 - me0) / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=None, help="a Redis URL: history kept in Redis")
    args = parser.parse_args()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, str(HERE / "servers" / "roost_history_server.py"), str(port)]
    if args.redis:
        command.append(args.redis)
    server = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        results: dict[str, list[dict[str, float]]] = {"/room": [], "/room-history": []}
        for _ in range(args.rounds):
            for path in results:
                figures = uvloop.run(run_once(port, server.pid, path, args))
                results[path].append(figures)
                print(
                    f"{path:14} {figures['per_server_cpu_s']:>12,.0f} deliveries/server-CPU-s "
                    f"{figures['deliveries_per_s']:>10,.0f}/s  server CPU "
                    f"{figures['server_cpu']:.2f}  client CPU {figures['client_cpu']:.2f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()
    plain = statistics.median(r["per_server_cpu_s"] for r in results["/room"])
    kept = statistics.median(r["per_server_cpu_s"] for r in results["/room-history"])
    extra = plain / kept - 1
    mode = f"history in Redis ({args.redis})" if args.redis else "history in memory"
    print(
        f"median: without history {plain:,.0f}, with history {kept:,.0f} deliveries per "
        f"server CPU-second ({mode}); history costs {extra:+.1%} server CPU per delivery"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
