"""Cross-process fan-out: 1,000 subscribers spread over 2 workers (``--processes 2``) against
the same load on one process. Neither the servers nor the client are pinned: on a 2-core
machine the two workers and the load generator share both cores.

    bench/.venv/bin/python bench/cluster_fanout.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import PY, free_port, raise_fd_limit, run_loadgen

HERE = Path(__file__).resolve().parent


def measure(processes: int, seconds: float) -> dict[str, float]:
    port = free_port()
    args = [PY, str(HERE / "servers" / "roost_server.py"), str(port)]
    if processes > 1:
        args += ["--processes", str(processes)]
    server = subprocess.Popen(args, preexec_fn=raise_fd_limit, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        fanout = ["fanout", "--subscribers", "1000", "--window", "16"]
        return run_loadgen(port, server.pid, fanout, seconds, pin=False)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for processes in (1, 2):
            figures = measure(processes, args.seconds)
            results[processes].append(figures)
            print(f"processes={processes}: {json.dumps(figures)}", flush=True)
    for processes, runs in results.items():
        rate = statistics.median(r["deliveries_per_s"] for r in runs)
        p99 = statistics.median(r["p99_us"] for r in runs)
        print(
            f"median over {args.rounds} rounds, {processes} process(es): "
            f"{rate:,.0f} deliveries/s, p99 {p99 / 1000:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
