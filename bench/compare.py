"""Compare roost from two checkouts, interleaved: the same measurement of ``bench/run.py``,
alternating between the two, for a before/after figure that the machine's noise touches
alike. Each checkout runs its own bench server with its own bench environment
(``bash bench/setup.sh`` in it).

    git worktree add ../old <commit> && (cd ../old && bash bench/setup.sh)
    bench/.venv/bin/python bench/compare.py --before ../old --measure "fan-out" --rounds 3
    bench/.venv/bin/python bench/compare.py --before ../old --measure handshakes \
        --key rss_per_connection_kb

The load generator is this checkout's for both (``bench/cload`` or ``bench/loadgen.py``, as
``bench/run.py`` picks it for the measurement).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py, next to this file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the other checkout's directory")
    parser.add_argument("--after", default=str(run.ROOT), help="this checkout (default)")
    every = {**run.MEASUREMENTS, **run.HTTP_MEASUREMENTS, **run.ROOST_MEASUREMENTS}
    parser.add_argument("--measure", default="fan-out", choices=sorted(every))
    parser.add_argument(
        "--key", help="the figure to compare (default: the one per server CPU-second)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    checkouts = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    results: dict[str, list[float]] = {name: [] for name in checkouts}
    for round_ in range(args.rounds):
        for name, root in checkouts.items():
            python = str(root / "bench" / ".venv" / "bin" / "python")
            run.SERVERS["roost"] = (python, str(root / "bench" / "servers" / "roost_server.py"))
            figures = run.measure("roost", args.measure, args.seconds)
            key = args.key or next(k for k in figures if k.endswith("_per_server_cpu_s"))
            results[name].append(round(figures[key], 2))
            print(
                f"round {round_ + 1} {name}: {key} {results[name][-1]:,}"
                f" (server CPU {figures.get('server_cpu_share', float('nan')):.2f},"
                f" client CPU {figures.get('client_cpu_share', float('nan')):.2f})",
                flush=True,
            )
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(json.dumps({"measure": args.measure, "per_round": results, "median": medians}))


if __name__ == "__main__":
    main()
