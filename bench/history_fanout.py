"""Server CPU per delivery of a room broadcast with a Redis broker: a room with history (each
message sequenced by a Redis script, delivered in an envelope) against a plain room, 1,000
subscribers in one room of one server, and publishers (members too) that each keep
``--window`` messages in flight. Starts its own redis-server (no persistence) and roost
server; nothing is pinned, so compare the CPU per delivery, not the rates.

    .venv/bin/python bench/history_fanout.py [--publishers 1] [--window 16] [--seconds 5]
        [--rounds 2] [--subscribers 1000] [--no-broker]

(run from the repository, with the environment of ``make venv``: it has redis-py.)
``--no-broker``: the same rooms in one process, without Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(port: int, broker: str) -> None:
    """The server: /plain and /history, each joining room "r" and broadcasting to it."""
    from roost import RoomHistory, Roost

    app = Roost(__file__, broker=broker or None)

    @app.websocket("/plain", ping_interval=None)
    async def plain(websocket):  # type: ignore[no-untyped-def]
        await websocket.join("r")
        while True:
            await websocket.broadcast(await websocket.receive_text(), room="r")

    @app.websocket("/history", history=RoomHistory(size=100, ttl=600), ping_interval=None)
    async def history(websocket):  # type: ignore[no-untyped-def]
        await websocket.join("r")
        while True:
            await websocket.broadcast(await websocket.receive_text(), room="r")

    app.start(host="127.0.0.1", port=port, log_level="WARNING")


class Counter(asyncio.Protocol):
    """A WebSocket client that counts the frames it receives (without decoding them)."""

    def __init__(self, path: str, on_frame) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.on_frame = on_frame
        self.ready = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.tag = b""  # a publisher's: the frames with it are its own messages
        self.own = False  # whether the last frame was one of them

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
        if not self.ready.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            del buf[: end + 4]
            self.ready.set_result(None)
        pos = 0
        while len(buf) - pos >= 2:
            n = buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if len(buf) < start + n:
                break
            if self.tag:
                self.own = buf.find(self.tag, start, start + n) >= 0
            pos = start + n
            self.on_frame(self)
        del buf[:pos]

    def send(self, text: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
        assert self.transport is not None and len(text) < 126
        self.transport.write(bytes([0x81, 0x80 | len(text)]) + mask + masked)


async def measure(port: int, pid: int, redis_pid: int, path: str, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    received = 0
    counting = False

    def on_frame(client: Counter) -> None:
        nonlocal received
        if counting:
            received += 1

    subscribers: list[Counter] = []
    for start in range(0, args.subscribers, 250):
        made = await asyncio.gather(
            *(
                loop.create_connection(lambda: Counter(path, on_frame), "127.0.0.1", port)
                for _ in range(start, min(args.subscribers, start + 250))
            )
        )
        group = [protocol for _, protocol in made]
        await asyncio.gather(*(c.ready for c in group))
        subscribers += group
    await asyncio.sleep(1)  # every join done (a history room sends "joined" first)
    message = b"x" * 28
    sent = 0

    def on_publisher_frame(client: Counter) -> None:
        # Publishers are members too; each sends one more message for each of its own.
        nonlocal sent
        on_frame(client)
        if client.own:
            client.own = False
            client.send(client.tag + message)
            sent += 1

    publishers: list[Counter] = []
    for _ in range(args.publishers):
        _, publisher = await loop.create_connection(
            lambda: Counter(path, on_publisher_frame), "127.0.0.1", port
        )
        await publisher.ready
        publisher.tag = b"p%03d " % len(publishers)
        publishers.append(publisher)
    await asyncio.sleep(0.5)  # every publisher joined (and, with history, got "joined")
    for publisher in publishers:
        for _ in range(args.window):
            publisher.send(publisher.tag + message)
    await asyncio.sleep(2)  # warm up
    counting = True
    cpu0, rcpu0, t0, sent0 = cpu_seconds(pid), cpu_seconds(redis_pid), time.perf_counter(), sent
    await asyncio.sleep(args.seconds)
    counting = False
    cpu1, rcpu1, t1, sent1 = cpu_seconds(pid), cpu_seconds(redis_pid), time.perf_counter(), sent
    for client in [*subscribers, *publishers]:
        assert client.transport is not None
        client.transport.abort()
    broadcasts = sent1 - sent0
    return {
        "deliveries_per_s": received / (t1 - t0),
        "server_cpu_us_per_delivery": (cpu1 - cpu0) / max(received, 1) * 1e6,
        "deliveries_per_server_cpu_s": received / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "redis_cpu_us_per_broadcast": (rcpu1 - rcpu0) / max(broadcasts, 1) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=1, help="connections that publish")
    parser.add_argument("--window", type=int, default=16, help="messages each keeps in flight")
    parser.add_argument("--no-broker", action="store_true", help="one process, no Redis")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "BROKER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp()
    redis_port = free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    redis = subprocess.Popen(
        [redis_server, "--port", str(redis_port), *options], stdout=subprocess.DEVNULL
    )
    results: dict[str, list[dict[str, float]]] = {"/plain": [], "/history": []}
    try:
        for _ in range(args.rounds):
            for path in results:
                port = free_port()
                broker = "" if args.no_broker else f"redis://127.0.0.1:{redis_port}/0"
                server = subprocess.Popen(
                    [sys.executable, __file__, "--serve", str(port), broker], cwd=ROOT
                )
                try:
                    time.sleep(2.0)
                    figures = asyncio.run(measure(port, server.pid, redis.pid, path, args))
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                results[path].append(figures)
                shown = ", ".join(f"{k} {v:,.2f}" for k, v in figures.items())
                print(f"{path}: {shown}", flush=True)
    finally:
        redis.kill()
        redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    for path, runs in results.items():
        per = statistics.median(r["server_cpu_us_per_delivery"] for r in runs)
        rate = statistics.median(r["deliveries_per_s"] for r in runs)
        print(
            f"median over {args.rounds} rounds, {path}: {per:.2f} us of server CPU per "
            f"delivery, {rate:,.0f} deliveries/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
