"""``make soak``: churn thousands of connections through a real server; fail if memory grows.

The server is tests/integration/apps/churn_app.py run by roost's runner (uvloop, the tuned
garbage collector: as in production). It is warmed up with churn rounds, then churned for
``--rounds`` more rounds of the same shape. A round sends ``--per-path`` clients along each close
path (clean close, room broadcast, handler return, disconnect by id, handler error, reset,
EOF without close frame, protocol error, unanswered pings, unanswered close, plain HTTP), once
with permessage-deflate and once without, ``--concurrency`` at a time. After each round, once
the server is idle, its RSS is read from /proc (Linux).

The soak fails (exit status 1) when the RSS after the last round is more than ``--bound-mib``
over the warm RSS, when per-connection objects are left once the server is idle, or when a
graceful shutdown with connections open leaves any behind or exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
import websockets

from tests.integration.churn import CLOSE_PATHS, ChurnServer, churn, settled
from tests.timing import seconds

MIB = 1024


async def soak(args: argparse.Namespace) -> list[str]:
    """Run the soak; return what failed (nothing when it passed)."""
    failures: list[str] = []
    server = await ChurnServer().ready()
    per_round = args.per_path * len(CLOSE_PATHS) * 2
    try:
        idle = await server.objects()
        start_rss = server.rss_kib()
        print(
            f"soak: server pid {server.proc.pid}; a round is {per_round} connections: "
            f"{len(CLOSE_PATHS)} close paths x {args.per_path}, with and without compression, "
            f"{args.concurrency} at a time"
        )
        print(f"{'round':>7} {'connections':>12} {'RSS MiB':>8} {'seconds':>8}  objects left")
        print(f"{'start':>7} {0:>12} {start_rss / MIB:>8.1f} {'':>8}")
        warm_rss = start_rss
        total = 0
        for n in range(args.warmup + args.rounds):
            began = time.monotonic()
            for compression in (True, False):
                await churn(
                    server.port,
                    per_path=args.per_path,
                    compression=compression,
                    concurrency=args.concurrency,
                )
            total += per_round
            counts = await settled(server, idle, seconds=10)
            rss = server.rss_kib()
            left = {k: v - idle[k] for k, v in counts.items() if v != idle[k]}
            name = f"warm {n + 1}" if n < args.warmup else str(n + 1 - args.warmup)
            seconds = time.monotonic() - began
            print(f"{name:>7} {total:>12} {rss / MIB:>8.1f} {seconds:>8.1f}  {left or '-'}")
            if n == args.warmup - 1:
                warm_rss = rss
            if left:
                failures.append(f"round {name}: objects left once idle: {left}")
        growth = (rss - warm_rss) / MIB
        print(
            f"warm RSS {warm_rss / MIB:.1f} MiB, final {rss / MIB:.1f} MiB: "
            f"{growth:+.1f} MiB (bound {args.bound_mib} MiB)"
        )
        if growth > args.bound_mib:
            failures.append(
                f"RSS grew {growth:.1f} MiB over the warm level, more than {args.bound_mib} MiB"
            )
        failures += await shutdown_with_connections_open(server, args.shutdown_clients)
    finally:
        server.stop()
    return failures


async def shutdown_with_connections_open(server: ChurnServer, count: int) -> list[str]:
    """SIGTERM with ``count`` connections open in rooms (half compressed): every one must get
    1001 and the server must exit 0 leaving no per-connection object."""
    clients = []
    for n in range(count):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws", compression="deflate" if n % 2 else None
        )
        await ws.send(f"join room-{n % 8}")
        async with asyncio.timeout(10):
            while await ws.recv() != "joined":
                pass
        clients.append(ws)
    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    codes = set()
    for ws in clients:
        await asyncio.wait_for(ws.wait_closed(), seconds(30))
        codes.add(ws.close_code)
    status, out = await stopping
    lines = [line for line in out.splitlines() if line.startswith("live objects after shutdown:")]
    left = {k: v for k, v in orjson.loads(lines[0].partition(":")[2]).items() if v} if lines else {}
    print(f"shutdown with {count} connections open: close codes {sorted(codes)}, exit {status}")
    failures = []
    if codes != {1001}:
        failures.append(f"shutdown closed connections with {sorted(codes)}, not 1001")
    if status != 0 or not lines:
        failures.append(f"the server exited {status} without its report:\n{out}")
    if left:
        failures.append(f"objects left after shutdown: {left}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds (10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up rounds (3)")
    parser.add_argument("--per-path", type=int, default=200, help="clients per close path (200)")
    parser.add_argument("--concurrency", type=int, default=200, help="clients at a time (200)")
    parser.add_argument(
        "--bound-mib", type=float, default=16, help="allowed RSS growth over warm, MiB (16)"
    )
    parser.add_argument(
        "--shutdown-clients", type=int, default=200, help="connections open at shutdown (200)"
    )
    args = parser.parse_args()
    failures = asyncio.run(soak(args))
    for failure in failures:
        print("FAIL:", failure)
    print("soak passed" if not failures else "soak failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
