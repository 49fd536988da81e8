"""Run roost's benchmarks side by side with its peers and write docs/benchmarks.md.

    python bench/run.py            # 3 interleaved rounds (about 10 minutes)
    python bench/run.py --quick    # 1 short round, to check that everything runs
    python bench/run.py --only "memory" "memory, deflate" --rounds 1   # some measurements

The echo, fan-out and handshake measurements are driven by ``bench/cload`` (a C load generator
that ``bench/setup.sh`` builds with gcc), light enough that the server is the bottleneck; the
measurements with compression, chat-like or JSON messages and the memory after one message by
``bench/loadgen.py`` (a uvloop client). The *http* measurements run ``wrk``
(``apt-get install wrk``) against the servers that serve HTTP: keep-alive GETs of a plaintext
and a JSON route on 64 connections. Every figure comes with the load generator's CPU share.

Measurements whose name ends in ", deflate" use browser-like clients that offer
permessage-deflate as Chromium does (``loadgen.py --deflate``); every server here negotiates
it when offered if it supports it, as it would in production.

Each server runs pinned to CPU 0 (taskset -c 0), the load generator to CPU 1. In each round
every measurement runs once per server, servers in a rotating order, each on a fresh process.
Figures are the medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = str(HERE / ".venv" / "bin" / "python")
CLOAD = str(HERE / "cload" / "cload")
PY_ROBYN = str(HERE / ".venv-robyn" / "bin" / "python")
SERVERS = {
    "roost": (PY, "roost_server.py"),
    "Robyn 0.88": (PY_ROBYN, "robyn_server.py"),
    "uvicorn+Starlette": (PY, "starlette_server.py"),
    "aiohttp": (PY, "aiohttp_server.py"),
    "picows (raw)": (PY, "picows_server.py"),
    "websockets 17": (PY, "websockets_server.py"),
}
CHAT = ["--size", "480", "--chat"]
FANOUT_CHAT = ["fanout", "--subscribers", "1000", "--window", "16", *CHAT]
#: Clients reconnecting at once in the reconnect storm (what one process's file limit allows).
STORM = 19_500
MEASUREMENTS = {
    "echo 32 B": ["echo", "--connections", "64", "--size", "32"],
    "echo 64 KiB": ["echo", "--connections", "64", "--size", "65536"],
    "fan-out": ["fanout", "--subscribers", "1000", "--window", "16"],
    "handshakes": ["handshakes", "--connections", "10000", "--batch", "250"],
    "reconnect storm": ["handshakes", "--connections", str(STORM), "--batch", "0"],
    "memory": ["memory", "--connections", "2000", "--size", "480"],
    "memory, deflate": ["memory", "--connections", "2000", "--size", "480", "--deflate"],
    "echo 480 B": ["echo", "--connections", "64", *CHAT],
    "echo 480 B, deflate": ["echo", "--connections", "64", *CHAT, "--deflate"],
    "fan-out 480 B": ["fanout", "--subscribers", "1000", "--window", "16", *CHAT],
    "fan-out 480 B, deflate": [
        "fanout",
        "--subscribers",
        "1000",
        "--window",
        "16",
        *CHAT,
        "--deflate",
    ],
}
#: Driven by the C load generator (bench/cload); the others by bench/loadgen.py.
CLOAD_MEASUREMENTS = ("echo 32 B", "echo 64 KiB", "fan-out", "handshakes", "reconnect storm")
JSON_ECHO = ["echo", "--connections", "64", "--json", "--size", "64"]
#: roost only: the same small JSON echo written by hand and with typed messages.
ROOST_MEASUREMENTS = {
    "echo JSON 64 B, by hand": [*JSON_ECHO, "--path", "/json-echo"],
    "echo JSON 64 B, typed": [*JSON_ECHO, "--path", "/typed-echo"],
}
#: HTTP keep-alive, 64 connections, driven by wrk; only for the servers that serve HTTP.
HTTP_MEASUREMENTS = {
    "http plaintext": ["http", "--connections", "64", "--path", "/plaintext"],
    "http json": ["http", "--connections", "64", "--path", "/json"],
}
HTTP_SERVERS = ("roost", "Robyn 0.88", "uvicorn+Starlette", "aiohttp")
#: The most extra server CPU per message typed dispatch may cost over the hand-written echo.
TYPED_OVERHEAD_BOUND = 0.20


def typed_overhead(by_hand: float, typed: float) -> float:
    """Extra server CPU per message of the typed echo over the hand-written one (0.1 = 10%),
    from their messages per server CPU-second."""
    return by_hand / typed - 1


#: The reconnect storm runs against roost and the peer of its target only: the servers that
#: accept with a backlog of 100 to 128 leave part of the storm unopened for minutes.
STORM_SERVERS = ("roost", "Robyn 0.88")


def runs_on(measurement: str, server: str) -> bool:
    """Whether ``measurement`` is run against ``server``."""
    if measurement == "reconnect storm":
        return server in STORM_SERVERS
    if measurement in ROOST_MEASUREMENTS:
        return server == "roost"
    if measurement in HTTP_MEASUREMENTS:
        return server in HTTP_SERVERS
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(name: str, port: int) -> subprocess.Popen[bytes]:
    python, script = SERVERS[name]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", python, str(HERE / "servers" / script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=raise_fd_limit,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.3)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def run_loadgen(
    port: int, pid: int, args: list[str], seconds: float, pin: bool = True, c: bool = False
) -> dict[str, float]:
    """Run one load-generator measurement against the server ``pid`` listening on ``port``:
    ``bench/loadgen.py``, or with ``c`` the C load generator ``bench/cload/cload``."""
    command = [
        *([CLOAD] if c else [PY, str(HERE / "loadgen.py")]),
        *args,
        "--port",
        str(port),
        "--pid",
        str(pid),
        "--seconds",
        str(seconds),
    ]
    out = subprocess.run(
        ["taskset", "-c", "1", *command] if pin else command,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(name: str, measurement: str, seconds: float) -> dict[str, float]:
    """One ``measurement`` against a fresh process of the server ``name``."""
    every = {**MEASUREMENTS, **HTTP_MEASUREMENTS, **ROOST_MEASUREMENTS}
    port = free_port()
    server = start_server(name, port)
    try:
        return run_loadgen(
            port, server.pid, every[measurement], seconds, c=measurement in CLOAD_MEASUREMENTS
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def median(results: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in results if key in r and r[key] == r[key]]
    if values and isinstance(values[0], str):
        return values[0]  # type: ignore[return-value]  # what was negotiated: one value
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    python = platform.python_version()
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {python}"


def compression_tables(med: dict[str, dict[str, dict[str, float]]], lines: list[str]) -> None:
    """The memory, echo and fan-out tables with and without permessage-deflate."""

    def negotiated(figures: dict[str, float]) -> str:
        value = str(figures.get("negotiated", "n/a"))
        return "none" if value == "none" else f"`{value}`"

    if any(m.endswith(", deflate") for m in med):
        lines += [
            "## Compression (permessage-deflate)",
            "",
            "Browsers always offer permessage-deflate. The *deflate* measurements use clients"
            " that offer it as Chromium does (`loadgen.py --deflate`), compress every message"
            " they send and inflate every reply; each server negotiates it when offered if it"
            " can, with its own defaults.",
            "",
        ]
    if "memory" in med or "memory, deflate" in med:
        lines += [
            "### Memory per connection, with and without compression",
            "",
            "2,000 connections opened (250 at a time) and held; server RSS read 2 s later"
            " (*idle*), then again 2 s after each connection sent one 480-byte chat message"
            " (JSON text) and got its echo (*after one message*). *Offered* is what the clients"
            " sent: nothing, or Chromium's `permessage-deflate; client_max_window_bits`;"
            " *negotiated* is the server's answer.",
            "",
            "| server | offered | negotiated | idle KB per connection"
            " | after one message KB per connection |",
            "| --- | --- | --- | --- | --- |",
        ]
        for server in SERVERS:
            for measurement, offered in (("memory", "none"), ("memory, deflate", "Chromium's")):
                figures = med.get(measurement, {}).get(server)
                if not figures:
                    continue
                lines.append(
                    f"| {server} | {offered} | {negotiated(figures)}"
                    f" | {fmt(figures.get('idle_kb_per_connection', float('nan')), 1)}"
                    f" | {fmt(figures.get('after_message_kb_per_connection', float('nan')), 1)} |"
                )
        lines.append("")
    for title, plain, deflate, unit, note in (
        (
            "Echo, 480-byte chat messages, with and without compression",
            "echo 480 B",
            "echo 480 B, deflate",
            "messages",
            "64 connections as in the echo above, each sending a 480-byte chat message (JSON"
            " text). With *deflate* the clients offer permessage-deflate as Chromium does,"
            " compress every message they send (as Chromium does) and inflate every reply.",
        ),
        (
            "Fan-out, 480-byte chat messages, with and without compression",
            "fan-out 480 B",
            "fan-out 480 B, deflate",
            "deliveries",
            "1,000 subscribers and one publisher as in the fan-out above, with 480-byte chat"
            " messages; *deflate* as in the echo table.",
        ),
    ):
        if plain not in med and deflate not in med:
            continue
        lines += [
            f"### {title}",
            "",
            note,
            "",
            f"| server | compression negotiated | {unit} per server CPU-s | {unit}/s | p50 µs"
            " | p99 µs | server CPU | client CPU |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for server in SERVERS:
            for measurement in (plain, deflate):
                figures = med.get(measurement, {}).get(server)
                if not figures:
                    continue
                on = str(figures.get("negotiated", "none")) != "none"
                cells = [
                    fmt(figures.get(f"{unit}_per_server_cpu_s", float("nan"))),
                    fmt(figures.get(f"{unit}_per_s", float("nan"))),
                    fmt(figures.get("p50_us", float("nan"))),
                    fmt(figures.get("p99_us", float("nan"))),
                    fmt(figures.get("server_cpu_share", float("nan")), 2),
                    fmt(figures.get("client_cpu_share", float("nan")), 2),
                ]
                offered = "yes" if on else ("no" if measurement == plain else "offered, refused")
                lines.append(f"| {server} | {offered} | " + " | ".join(cells) + " |")
        lines.append("")


@dataclass(frozen=True)
class Target:
    """One row of the targets table."""

    figure: str
    target: str
    measured: str
    met: str  # "yes", "no", or "reported" for a figure without a bound
    client: str  # the load generator's CPU share in the measurements compared


def section3_targets(med: dict[str, dict[str, dict[str, float]]]) -> list[Target]:
    """The targets of roost's single process, from the medians of one run."""
    robyn, picows, starlette = "Robyn 0.88", "picows (raw)", "uvicorn+Starlette"
    out: list[Target] = []

    def client(measurement: str, *servers: str) -> str:
        by = med[measurement]
        return ", ".join(
            f"{s.split()[0]} {fmt(by[s].get('client_cpu_share', float('nan')), 2)}" for s in servers
        )

    def ratio(figure: str, measurement: str, key: str, peer: str, factor: float) -> None:
        by = med.get(measurement, {})
        if "roost" not in by or peer not in by:
            return
        mine, theirs = by["roost"][key], by[peer][key]
        r = mine / theirs
        out.append(
            Target(
                figure,
                f"≥ {factor:g}× {peer}",
                f"{r:.2f}× ({fmt(mine)} / {fmt(theirs)})",
                "yes" if r >= factor else "no",
                client(measurement, "roost", peer),
            )
        )

    def bound(figure: str, measurement: str, key: str, most: float, unit: str) -> None:
        figures = med.get(measurement, {}).get("roost")
        if figures is None:
            return
        value = figures[key]
        met = "yes" if value <= most else "no"
        share = fmt(figures.get("client_cpu_share", float("nan")), 2)
        out.append(Target(figure, f"≤ {most:g} {unit}", f"{value:.1f} {unit}", met, share))

    ratio("echo 32 B", "echo 32 B", "messages_per_server_cpu_s", picows, 1.0)
    ratio("fan-out, 1,000 subscribers", "fan-out", "deliveries_per_server_cpu_s", robyn, 1.5)
    ratio("handshakes", "handshakes", "handshakes_per_server_cpu_s", robyn, 1.5)
    storm = med.get("reconnect storm", {})
    if "roost" in storm:

        def took(figures: dict[str, float]) -> str:
            if figures.get("opened", STORM) < STORM:
                opened = fmt(figures["opened"])
                return f"{opened} of {STORM:,} open after {figures['seconds']:.0f} s"
            return f"{figures['seconds']:.2f} s"

        seconds = took(storm["roost"])
        if robyn in storm:
            seconds += f" (Robyn: {took(storm[robyn])})"
        out.append(
            Target(
                f"reconnect storm, {STORM:,} clients at once",
                "how long until all are open",
                seconds,
                "reported",
                client("reconnect storm", *[s for s in ("roost", robyn) if s in storm]),
            )
        )
    bound("idle memory, no compression", "handshakes", "rss_per_connection_kb", 8, "KB")
    bound("idle memory, deflate negotiated", "memory, deflate", "idle_kb_per_connection", 16, "KB")
    for measurement in HTTP_MEASUREMENTS:
        key = "requests_per_server_cpu_s"
        ratio(f"HTTP {measurement[5:]}, 64 conns", measurement, key, robyn, 1.5)
        ratio(f"HTTP {measurement[5:]}, 64 conns", measurement, key, starlette, 2.0)
    # Earlier targets, kept so that a regression shows.
    ratio("echo 32 B", "echo 32 B", "messages_per_server_cpu_s", robyn, 3.0)
    ratio("echo 32 B", "echo 32 B", "messages_per_server_cpu_s", "aiohttp", 1.0)
    bound(
        "memory, deflate negotiated, after one message",
        "memory, deflate",
        "after_message_kb_per_connection",
        24,
        "KB",
    )
    hand = med.get("echo JSON 64 B, by hand", {}).get("roost")
    typed = med.get("echo JSON 64 B, typed", {}).get("roost")
    if hand and typed:
        extra = typed_overhead(
            hand["messages_per_server_cpu_s"], typed["messages_per_server_cpu_s"]
        )
        out.append(
            Target(
                "typed echo, server CPU per message over the same echo by hand",
                f"≤ +{TYPED_OVERHEAD_BOUND:.0%}",
                f"{extra:+.1%}",
                "yes" if extra <= TYPED_OVERHEAD_BOUND else "no",
                fmt(typed.get("client_cpu_share", float("nan")), 2),
            )
        )
    return out


def write_report(
    results: dict[str, dict[str, list[dict[str, float]]]], rounds: int, command: str, path: Path
) -> list[str]:
    med = {
        m: {s: {k: median(rs, k) for k in (rs[0] if rs else {})} for s, rs in by.items()}
        for m, by in results.items()
    }
    robyn = "Robyn 0.88"
    lines = [
        "# Benchmarks",
        "",
        "roost side by side with its peers, measured by `bench/` in one run.",
        "",
        f"- Machine: {machine()}.",
        f"- Command: `{command}` ({rounds} interleaved round{'s' if rounds > 1 else ''}, medians;"
        f" run on {datetime.now(UTC):%Y-%m-%d}).",
        "- Each server runs on CPU 0 (`taskset -c 0`), the load generator on CPU 1: `bench/cload`"
        " (C, epoll, one thread) for echo, fan-out and handshakes, `bench/loadgen.py` (a raw"
        " uvloop client) for the rest. *Per server CPU-second* divides the work done by the CPU"
        " time the server process used over the same window, read from `/proc`. *Client CPU* is"
        " the load generator's share of its CPU over that window: near 1.00, the client, not the"
        " server, bounds the figure.",
        "",
    ]

    def table(
        title: str,
        measurement: str,
        cols: list[tuple[str, str, int]],
        note: str,
        key: str | None = None,
    ) -> None:
        """A table of ``measurement``, one row per server; *vs Robyn* compares ``key`` (the
        first column by default)."""
        if measurement not in med:
            return
        lines.extend([f"## {title}", "", note, ""])
        header = "| server | " + " | ".join(c[0] for c in cols) + " | vs Robyn |"
        lines.extend([header, "|" + " --- |" * (len(cols) + 2)])
        key = key or cols[0][1]
        base = med[measurement].get(robyn, {}).get(key, float("nan"))
        for server, figures in med[measurement].items():
            ratio = figures.get(key, float("nan")) / base if base == base and base else float("nan")
            cells = [fmt(figures.get(k, float("nan")), d) for _, k, d in cols]
            lines.append(f"| {server} | " + " | ".join(cells) + f" | {fmt(ratio, 2)}× |")
        lines.append("")

    echo_cols = [
        ("messages per server CPU-s", "messages_per_server_cpu_s", 0),
        ("messages/s", "messages_per_s", 0),
        ("p50 µs", "p50_us", 0),
        ("p99 µs", "p99_us", 0),
        ("server CPU", "server_cpu_share", 2),
        ("client CPU", "client_cpu_share", 2),
    ]
    table(
        "Echo, 32-byte messages",
        "echo 32 B",
        echo_cols,
        "64 connections, each sending its next message when the echo of the last arrives.",
    )
    table("Echo, 64 KiB messages", "echo 64 KiB", echo_cols, "The same with 64 KiB messages.")
    http_cols = [
        ("requests per server CPU-s", "requests_per_server_cpu_s", 0),
        ("requests/s", "requests_per_s", 0),
        ("p50 µs", "p50_us", 0),
        ("p99 µs", "p99_us", 0),
        ("server CPU", "server_cpu_share", 2),
        ("client CPU", "client_cpu_share", 2),
    ]
    for measurement, what in (
        ("http plaintext", "`GET /plaintext` → `Hello, World!` (text/plain)"),
        ("http json", '`GET /json` → `{"message": "Hello, World!"}` (application/json)'),
    ):
        table(
            f"HTTP, keep-alive, 64 connections: {measurement.removeprefix('http ')}",
            measurement,
            http_cols,
            f"{what}, async handlers; `wrk -t1 -c64 -d<seconds>s --latency` (one thread,"
            " 64 keep-alive connections) on CPU 1, after a 1 s warm-up run. Latency is wrk's.",
        )
    table(
        "Fan-out",
        "fan-out",
        [
            ("deliveries per server CPU-s", "deliveries_per_server_cpu_s", 0),
            ("deliveries/s", "deliveries_per_s", 0),
            ("p50 µs", "p50_us", 0),
            ("p99 µs", "p99_us", 0),
            ("server CPU", "server_cpu_share", 2),
            ("client CPU", "client_cpu_share", 2),
        ],
        "1,000 subscribers and one publisher (16 messages in flight); the endpoint broadcasts"
        " each 32-byte message to every connection. Latency: publish to delivery.",
    )
    handshake_cols = [
        ("handshakes per server CPU-s", "handshakes_per_server_cpu_s", 0),
        ("handshakes/s", "handshakes_per_s", 0),
        ("RSS per connection (KB)", "rss_per_connection_kb", 1),
        ("p50 ms", "p50_ms", 1),
        ("p99 ms", "p99_ms", 1),
        ("server CPU", "server_cpu_share", 2),
        ("client CPU", "client_cpu_share", 2),
    ]
    for figures in [*med.get("handshakes", {}).values(), *med.get("reconnect storm", {}).values()]:
        for pct in ("p50", "p99", "max"):
            figures[f"{pct}_ms"] = figures.get(f"{pct}_us", float("nan")) / 1e3
    table(
        "Handshakes and idle memory: 10,000 connections",
        "handshakes",
        handshake_cols,
        "10,000 WebSocket handshakes, 250 in flight at a time, each 101 checked"
        " (`Sec-WebSocket-Accept`); the connections are held and the server's memory read 2 s"
        " after the last one opened. Latency: from `connect()` to the whole 101 response.",
    )
    table(
        f"Reconnect storm: {STORM:,} clients at once",
        "reconnect storm",
        [
            ("seconds until all are open", "seconds", 2),
            ("opened", "opened", 0),
            ("handshakes per server CPU-s", "handshakes_per_server_cpu_s", 0),
            ("p50 ms", "p50_ms", 0),
            ("p99 ms", "p99_ms", 0),
            ("slowest ms", "max_ms", 0),
            ("retries", "retries", 0),
            ("server CPU", "server_cpu_share", 2),
            ("client CPU", "client_cpu_share", 2),
        ],
        f"What a deploy's restart looks like to the server: {STORM:,} clients connect at the same"
        " moment to a fresh server process (the load generator issues the `connect()`s as fast"
        " as it can, 32 per turn of its loop, and sends each request as soon as its connection is"
        " up); *seconds* runs from the first `connect()` to the last 101. On loopback the kernel"
        " does both ends of each TCP handshake in the connecting process, so a client CPU near"
        " 1.00 means the client, not the server, set the pace. A connection the server refused"
        " or reset is retried at once (*retries*);"
        " one not open after 120 s is left out (*opened* says how many opened).",
        key="handshakes_per_server_cpu_s",
    )
    compression_tables(med, lines)
    typed_rows = [(m, med[m]["roost"]) for m in ROOST_MEASUREMENTS if "roost" in med.get(m, {})]
    if typed_rows:
        lines += [
            "## Typed messages: echo of a small JSON message (roost)",
            "",
            '64 connections echo `{"type":"echo","text":"xx…"}` (64 bytes): *by hand*'
            " with `receive_text`, `orjson.loads`, a check of both fields, `orjson.dumps` and"
            " `send_text`; *typed* with an `Echo` Struct handled by `@endpoint.on(Echo)` that"
            " sends the message back (decode, dispatch, encode). See `bench/typed_ab.py` for"
            " an interleaved A/B run of just these two.",
            "",
            "| endpoint | messages per server CPU-s | messages/s | p50 µs | p99 µs | server CPU |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for measurement, figures in typed_rows:
            cells = [
                fmt(figures.get(k, float("nan")), d)
                for k, d in (
                    ("messages_per_server_cpu_s", 0),
                    ("messages_per_s", 0),
                    ("p50_us", 0),
                    ("p99_us", 0),
                    ("server_cpu_share", 2),
                )
            ]
            lines.append(f"| {measurement} | " + " | ".join(cells) + " |")
        lines.append("")
    targets = section3_targets(med)
    lines += [
        "## Targets",
        "",
        "Each measured in this run, per server CPU-second; *client CPU* is the load generator's"
        " share of its CPU in the measurements compared (roost's first).",
        "",
        "| figure | target | measured | met | client CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {t.figure} | {t.target} | {t.measured} | {t.met} | {t.client} |" for t in targets]
    lines.append("")
    extra = HERE / "notes.md"
    if extra.exists():
        lines += [extra.read_text().rstrip(), ""]
    lines += kept_sections(path)
    path.write_text("\n".join(lines))
    return [f"{t.figure}, {t.target}: {t.met} ({t.measured})" for t in targets]


#: Sections of the report written by other scripts (bench/scale.py, bench/latency.py) and by
#: hand between these markers are carried over when the report is written again.
KEEP_BEGIN, KEEP_END = "<!-- kept by bench/run.py: begin -->", "<!-- kept by bench/run.py: end -->"


def kept_sections(path: Path) -> list[str]:
    """The kept sections of the report at ``path`` as it is now, markers included."""
    text = path.read_text() if path.exists() else ""
    kept = []
    for part in text.split(KEEP_BEGIN)[1:]:
        if KEEP_END in part:
            kept += [KEEP_BEGIN + part.split(KEEP_END, 1)[0] + KEEP_END, ""]
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only", nargs="*", help="measurements to run (default: all)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    rounds, seconds = (1, 2.0) if args.quick else (args.rounds, args.seconds)
    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    every = {**MEASUREMENTS, **HTTP_MEASUREMENTS, **ROOST_MEASUREMENTS}
    chosen = {k: v for k, v in every.items() if not args.only or k in args.only}
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        m: {s: [] for s in SERVERS if runs_on(m, s)} for m in chosen
    }
    names = list(SERVERS)
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for m in chosen:
            for server in order:
                if not runs_on(m, server):
                    continue
                try:
                    figures = measure(server, m, seconds)
                except Exception as exc:  # a peer failing must not stop the run
                    print(f"round {round_no + 1} {m} {server}: failed: {exc}", flush=True)
                    continue
                results[m][server].append(figures)
                print(f"round {round_no + 1} {m} {server}: {json.dumps(figures)}", flush=True)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"raw-{int(time.time())}.json").write_text(json.dumps(results, indent=1))
    command = (
        "make bench"
        if len(sys.argv) == 1
        else "bench/.venv/bin/python bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    )
    for line in write_report(results, rounds, command, Path(args.out)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
