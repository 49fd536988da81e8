"""Run the Autobahn|Testsuite fuzzingclient against roost's echo server and judge the result.

    python compliance/run.py --quick   # every case but 9.* (performance), 12.* and 13.*
    python compliance/run.py --full    # all 517 cases
    python compliance/run.py --groups 12.* 13.*   # some groups (12: compression, 13: its
                                                  # parameters)

Each case group runs as its own wstest process under a timeout, so a hang loses one group,
not the run. Exits 1 when a case FAILED, is missing, or is NON-STRICT.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WSTEST = HERE / ".venv-wstest" / "bin" / "wstest"
QUICK = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
FULL = [*QUICK, "9.*", "12.*", "13.*"]
EXPECTED = {"quick": 247, "full": 517}
GROUP_CASES = {"9.*": 54, "12.*": 90, "13.*": 126}
GROUP_TIMEOUT = {"9.*": 900, "12.*": 900, "13.*": 900}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ROOST_PORT": str(port), "ROOST_LOG_LEVEL": "ERROR"}
    proc = subprocess.Popen([sys.executable, "-m", "compliance.echo_server"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the echo server did not start")


def run_group(group: str, port: int, outdir: Path) -> None:
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": "roost", "url": f"ws://127.0.0.1:{port}"}],
        "cases": [group],
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_file = outdir / f"spec-{group.rstrip('.*')}.json"
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    try:
        subprocess.run(
            [str(WSTEST), "-m", "fuzzingclient", "-s", str(spec_file)],
            cwd=outdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=GROUP_TIMEOUT.get(group, 300),
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  {group}: timed out", flush=True)
    print(f"  {group}: {time.monotonic() - started:.1f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="all but 9.*, 12.*, 13.* (default)")
    mode.add_argument("--full", action="store_true", help="all 517 cases")
    mode.add_argument("--groups", nargs="+", choices=FULL, help="only these case groups")
    args = parser.parse_args()
    which = "full" if args.full else "groups" if args.groups else "quick"
    groups = FULL if which == "full" else args.groups if which == "groups" else QUICK
    expected = EXPECTED.get(which)
    if which == "groups" and all(g in GROUP_CASES for g in groups):
        expected = sum(GROUP_CASES[g] for g in groups)
    if not WSTEST.exists():
        subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    started = time.monotonic()
    port = free_port()
    server = start_server(port)
    results: dict[str, dict[str, str]] = {}
    try:
        for group in groups:
            outdir = HERE / "reports" / which / group.rstrip(".*")
            outdir.mkdir(parents=True, exist_ok=True)
            (outdir / "index.json").unlink(missing_ok=True)
            run_group(group, port, outdir)
            index = outdir / "index.json"
            if index.exists():
                results.update(json.loads(index.read_text()).get("roost", {}))
            if server.poll() is not None:
                print("the echo server died", flush=True)
                return 1
    finally:
        server.terminate()
        server.wait(timeout=15)
    behavior = Counter(r["behavior"] for r in results.values())
    closes = Counter(r["behaviorClose"] for r in results.values())
    print(
        f"\nAutobahn fuzzingclient, {which} set: {len(results)} cases in "
        f"{time.monotonic() - started:.0f} s"
    )
    for name in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"):
        print(f"  {name:14} {behavior.get(name, 0)}")
    print("  close behaviour: " + ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))

    def key(case: str) -> list[int]:
        return [int(p) for p in case.split(".")]

    bad = []
    for case in sorted(results, key=key):
        r = results[case]
        if r["behavior"] in ("FAILED", "NON-STRICT") or r["behaviorClose"] == "FAILED":
            bad.append(case)
            print(f"  {case}: {r['behavior']} / close {r['behaviorClose']}")
    missing = (expected if expected is not None else len(results)) - len(results)
    if missing > 0:
        print(f"  {missing} cases missing")
    return 1 if bad or missing > 0 else 0


if __name__ == "__main__":
    sys.exit(main())
