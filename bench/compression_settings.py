"""What each permessage-deflate setting of roost costs: server memory per connection and
server CPU per message, with browser-like clients (``loadgen.py --deflate``).

    bench/.venv/bin/python bench/compression_settings.py [--connections 2000 --seconds 2]

For each setting a fresh roost server (``servers/roost_server.py`` with that endpoint
option) runs on CPU 0 and the load generator on CPU 1: ``memory`` (``--connections`` idle
connections, then one 480-byte chat message each), then ``echo`` with 64 connections sending
32-byte messages (x's) and 480-byte chat messages (JSON text). Prints a Markdown table.

    bench/.venv/bin/python bench/compression_settings.py --codec

times roost's codec alone instead, with its default settings, in this process: inflating and
compressing one 480-byte chat message (a new message each time, as without context takeover).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import zlib

from loadgen import chat_message
from run import HERE, PY, free_port, raise_fd_limit, run_loadgen

from roost.protocol.deflate import Compression, DeflateParams

VARIANTS: list[tuple[str, list[str]]] = [
    ("`compression=False` (the offer is declined)", ["compression=False"]),
    ("defaults", []),
    ("`compression_threshold=0`", ["compression_threshold=0"]),
    ("`compression_level=1`", ["compression_level=1"]),
    ("`server_no_context_takeover=False`", ["server_no_context_takeover=False"]),
    ("`client_no_context_takeover=False`", ["client_no_context_takeover=False"]),
    (
        "both `False` (the `websockets` library's server settings)",
        ["server_no_context_takeover=False", "client_no_context_takeover=False"],
    ),
    (
        "both `False`, windows 15, `compression_mem_level=8` (zlib's defaults)",
        [
            "server_no_context_takeover=False",
            "client_no_context_takeover=False",
            "server_max_window_bits=15",
            "client_max_window_bits=15",
            "compression_mem_level=8",
        ],
    ),
]


def start(options: list[str], port: int) -> subprocess.Popen[bytes]:
    script = str(HERE / "servers" / "roost_server.py")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", PY, script, str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=raise_fd_limit,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.3)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("roost did not start")


def measure(options: list[str], args: list[str], seconds: float) -> dict[str, float]:
    port = free_port()
    server = start(options, port)
    try:
        return run_loadgen(port, server.pid, args, seconds)
    finally:
        server.terminate()
        server.wait(timeout=10)


def codec_timing(count: int = 20000) -> str:
    """Microseconds roost's default codec takes to inflate and to compress a chat message."""
    message = chat_message(480)
    codec = Compression().codec(DeflateParams(True, True, 12, 12))
    sender = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 8)
    payload = (sender.compress(message) + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]
    started = time.perf_counter()
    for _ in range(count):
        codec.decompress(payload, final=True, max_size=1 << 20)
    inflate = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for _ in range(count):
        codec.compress(message)
    deflate = (time.perf_counter() - started) / count * 1e6
    size = len(codec.compress(message))
    return (
        f"480-byte chat message: inflate {inflate:.1f} µs, compress {deflate:.1f} µs"
        f" (to {size} bytes), zlib {zlib.ZLIB_RUNTIME_VERSION}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--codec", action="store_true", help="time the codec alone")
    args = parser.parse_args()
    if args.codec:
        print(codec_timing())
        return 0
    lines = [
        "| setting | negotiated | idle KB per connection | after one message KB per connection"
        " | server µs per 32-byte message | server µs per 480-byte message |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, options in VARIANTS:
        memory = measure(
            options,
            ["memory", "--connections", str(args.connections), "--size", "480", "--deflate"],
            args.seconds,
        )
        echo = [
            measure(options, ["echo", "--connections", "64", *kind, "--deflate"], args.seconds)
            for kind in (["--size", "32"], ["--size", "480", "--chat"])
        ]
        cpu = [f"{1e6 / e['messages_per_server_cpu_s']:.1f}" for e in echo]
        negotiated = memory["negotiated"]
        row = (
            f"| {label} | {'none' if negotiated == 'none' else f'`{negotiated}`'}"
            f" | {memory['idle_kb_per_connection']:.1f}"
            f" | {memory['after_message_kb_per_connection']:.1f} | {cpu[0]} | {cpu[1]} |"
        )
        print(row, file=sys.stderr, flush=True)
        lines.append(row)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
