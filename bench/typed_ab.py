"""Typed dispatch against the same echo written by hand: an interleaved A/B run on roost.

    bench/.venv/bin/python bench/typed_ab.py [--rounds 3 --seconds 3]

Each round measures ``echo JSON 64 B, by hand`` and ``echo JSON 64 B, typed`` of
``bench/run.py`` once each, alternating which goes first, on fresh server processes pinned as
``bench/run.py`` pins them. Prints every measurement, then the medians of messages per server
CPU-second and the extra server CPU per message of the typed echo (bound: 20%). It uses the
roost installed in ``bench/.venv``; run it with ``PYTHONPATH=src`` to measure this tree's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from run import ROOST_MEASUREMENTS, TYPED_OVERHEAD_BOUND, measure, typed_overhead


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    names = list(ROOST_MEASUREMENTS)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        for name in names if round_no % 2 == 0 else names[::-1]:
            figures = measure("roost", ROOST_MEASUREMENTS[name], args.seconds)
            rates[name].append(figures["messages_per_server_cpu_s"])
            print(f"round {round_no + 1} {name}: {json.dumps(figures)}", flush=True)
    hand, typed = (statistics.median(rates[name]) for name in names)
    extra = typed_overhead(hand, typed)
    print(f"{names[0]}: {hand:,.0f} messages per server CPU-s (median)")
    print(f"{names[1]}: {typed:,.0f} messages per server CPU-s (median)")
    verdict = "within" if extra <= TYPED_OVERHEAD_BOUND else "OVER"
    print(f"typed: {extra:+.1%} server CPU per message ({verdict} the 20% bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
