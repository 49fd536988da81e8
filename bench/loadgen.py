"""roost's benchmark load generator: a raw uvloop WebSocket client, cheap per message.

Frames are built once (the mask never changes, which is fine for a benchmark), and replies
of a known size are counted by bytes rather than parsed, so that the client stays far from
being the bottleneck. Server CPU is read from /proc over exactly the measured window.

    python loadgen.py echo   --port P --pid PID [--connections 64 --size 32 --seconds 5]
    python loadgen.py echo   --port P --pid PID --json --path /typed-echo [--size 64]
    python loadgen.py fanout --port P --pid PID [--subscribers 1000 --seconds 5]
    python loadgen.py scale  --port P --pid PID [--connections 10000]
    python loadgen.py memory --port P --pid PID [--connections 2000 --size 480]
    python loadgen.py http   --port P --pid PID --path /plaintext [--connections 64]

``http`` runs ``wrk`` (keep-alive, one thread) against GET ``--path`` after checking one
response, and reports its requests and latency percentiles.

``--deflate`` makes every connection a browser-like client: it offers permessage-deflate as
Chromium does (``permessage-deflate; client_max_window_bits``), compresses every message it
sends (zlib, memLevel 8, the window the server allows, context takeover unless the server
asks for none) and parses and inflates what it receives. Without it replies of a known size
are counted by bytes.

``--json`` sends a small JSON message, ``{"type":"echo","text":"..."}`` of ``--size`` bytes, to
``--path``, and first checks that one reply is that same message, byte for byte.

Each prints one JSON object with its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import uvloop

MASK = b"\x11\x22\x33\x44"
TICK = os.sysconf("SC_CLK_TCK")
#: What Chromium offers (the websockets client offers the same by default).
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


def chat_message(size: int) -> bytes:
    """A chat-like JSON text message of ``size`` bytes (at least 100), as a browser app
    would send: a few fields, then words."""
    if size < 100:
        raise SystemExit("--chat needs --size 100 or more")
    words = (
        "the quick brown fox jumps over the lazy dog while everyone in the room keeps "
        "talking about the weather the match last night and what to have for lunch today "
    )
    head = '{"type":"message","room":"general","from":"user-0042","text":"'
    body = (words * (size // len(words) + 1))[: size - len(head) - 2]
    return (head + body + '"}').encode()


def echo_message(size: int) -> bytes:
    """A small JSON message of ``size`` bytes (at least 24): ``{"type":"echo","text":"..."}``."""
    head = b'{"type":"echo","text":"'
    if size < len(head) + 2:
        raise SystemExit(f"--json needs --size {len(head) + 2} or more")
    return head + b"x" * (size - len(head) - 2) + b'"}'


def offered_params(header: str) -> dict[str, int | bool]:
    """The permessage-deflate parameters of a server's response header."""
    params: dict[str, int | bool] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        params[name.strip()] = int(value) if value else True
    return params


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


def masked_frame(payload: bytes, rsv1: bool = False) -> bytes:
    n = len(payload)
    b0 = 0xC1 if rsv1 else 0x81
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
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
    """One connection: handshake, then count replies of a known length; or, with ``deflate``,
    offer permessage-deflate and parse every reply (``message`` holds the last one)."""

    def __init__(  # type: ignore[no-untyped-def]
        self, path: str, expect: int, on_reply, keep_data: bool = False, deflate: bool = False
    ) -> None:
        self.path = path
        self.expect = expect
        self.on_reply = on_reply
        self.keep_data = keep_data
        self.offer = deflate
        self.ready = asyncio.get_running_loop().create_future()
        self.head = b""
        self.pending = 0
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.extensions = ""  # the server's Sec-WebSocket-Extensions answer
        self.parse = deflate  # parse frames (needed once compression may be negotiated)
        self.message = b""
        self._compressor: zlib._Compress | None = None
        self._client_nct = False
        self._cached: bytes | None = None
        self._inflater: zlib._Decompress | None = None
        self._server_nct = False
        self._server_bits = 15

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        offer = f"Sec-WebSocket-Extensions: {CHROMIUM_OFFER}\r\n" if self.offer else ""
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{offer}"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def _negotiated(self, head: bytes) -> None:
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                self.extensions = value.strip()
        if not self.extensions.startswith("permessage-deflate"):
            return
        params = offered_params(self.extensions)
        self._server_nct = bool(params.get("server_no_context_takeover"))
        self._server_bits = int(params.get("server_max_window_bits", 15))
        self._client_nct = bool(params.get("client_no_context_takeover"))
        client_bits = int(params.get("client_max_window_bits", 15))
        # Chromium's deflater: zlib's default level, memLevel 8, the window the server named.
        self._compressor = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -max(client_bits, 9), 8
        )

    def frame(self, payload: bytes) -> bytes:
        """The masked frame of a text message, compressed when deflate was negotiated."""
        compressor = self._compressor
        if compressor is None:
            return masked_frame(payload)
        if self._client_nct and self._cached is not None and self._cached[0] == payload:
            return self._cached[1]  # the same message on its own compresses the same
        data = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        frame = masked_frame(data, rsv1=True)
        if self._client_nct:
            compressor.flush(zlib.Z_FULL_FLUSH)  # the next message may not refer back
            self._cached = (payload, frame)  # type: ignore[assignment]
        return frame

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(self.head[:80].decode(errors="replace")))
                return
            self._negotiated(self.head[:end])
            data = self.head[end + 4 :]
            self.head = b""
            self.ready.set_result(None)
            if not data:
                return
        if self.parse:
            self._frames(data)
            return
        if self.keep_data:
            self.data += data
        self.pending += len(data)
        while self.pending >= self.expect:
            self.pending -= self.expect
            self.on_reply(self)

    def _frames(self, data: bytes) -> None:
        buf = self.data
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
            if len(buf) < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            if b0 & 0x40:
                inflater = self._inflater or zlib.decompressobj(-self._server_bits)
                payload = inflater.decompress(payload + TAIL)
                self._inflater = None if self._server_nct else inflater
            if b0 & 0x0F in (1, 2):
                self.message = payload
                self.on_reply(self)
        del buf[:pos]

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
    deflate: bool = False,
) -> list[Client]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for start in range(0, count, batch):
        made = await asyncio.gather(
            *(
                loop.create_connection(
                    lambda i=i: Client(path, expect, on_reply, keep(i), deflate),
                    "127.0.0.1",
                    port,
                )
                for i in range(start, min(count, start + batch))
            )
        )
        group = [protocol for _, protocol in made]
        await asyncio.gather(*(c.ready for c in group))
        clients += group
    return clients


def payload_for(args: argparse.Namespace) -> bytes:
    """The message the clients send: ``--size`` bytes of x, of chat-like JSON (``--chat``) or
    a small JSON message (``--json``)."""
    if args.json:
        return echo_message(args.size)
    return chat_message(args.size) if args.chat else b"x" * args.size


async def check_echo(port: int, path: str, payload: bytes) -> None:
    """Exit unless the server at ``path`` answers ``payload`` with the same message."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    def on_reply(client: Client) -> None:
        if not answer.done():
            answer.set_result(client.message)

    _, client = await loop.create_connection(lambda: Client(path, 0, on_reply), "127.0.0.1", port)
    await client.ready
    client.parse = True
    client.transport.write(masked_frame(payload))  # type: ignore[union-attr]
    reply = await asyncio.wait_for(answer, 10)
    client.transport.abort()  # type: ignore[union-attr]
    if reply != payload:
        raise SystemExit(f"{path} answered {reply!r} to {payload!r}")


async def echo(args: argparse.Namespace) -> dict[str, object]:
    payload = payload_for(args)
    if args.json:
        await check_echo(args.port, args.path, payload)
    frame = masked_frame(payload)
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
        client.transport.write(client.frame(payload) if args.deflate else frame)  # type: ignore[union-attr]

    clients = await connect_many(
        args.port,
        args.path,
        args.connections,
        reply_length(len(payload)),
        on_reply,
        deflate=args.deflate,
    )
    for client in clients:
        sent_at[client] = now()
        client.transport.write(client.frame(payload) if args.deflate else frame)  # type: ignore[union-attr]
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
        "negotiated": clients[0].extensions or "none",
        "messages_per_s": count / elapsed,
        "messages_per_server_cpu_s": count / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / elapsed,
        "client_cpu_share": (c1 - c0) / elapsed,
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
    }


async def fanout(args: argparse.Namespace) -> dict[str, object]:
    size = args.size
    expect = reply_length(size)
    header = expect - size
    body = payload_for(args)[20:]
    received = 0
    measuring = False
    latencies: list[float] = []
    now = time.perf_counter_ns

    def on_delivery(client: Client) -> None:
        nonlocal received
        if measuring:
            received += 1
        if not client.keep_data:
            return
        if client.parse:
            stamp = int(client.message[:20])
        elif len(client.data) >= expect:
            stamp = int(client.data[header : header + 20])
            del client.data[:expect]
        else:
            return
        if measuring:
            latencies.append((now() - stamp) / 1e3)

    subscribers = await connect_many(
        args.port,
        "/fanout",
        args.subscribers,
        expect,
        on_delivery,
        keep=lambda i: i % 50 == 0,
        deflate=args.deflate,
    )

    def on_own_copy(client: Client) -> None:
        client.transport.write(client.frame(b"%020d" % now() + body))  # type: ignore[union-attr]

    (publisher,) = await connect_many(
        args.port, "/fanout", 1, expect, on_own_copy, deflate=args.deflate
    )
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
        "negotiated": publisher.extensions or "none",
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


async def memory(args: argparse.Namespace) -> dict[str, object]:
    """Server memory per connection: ``--connections`` idle connections, then after one
    ``--size``-byte chat message from each (echoed back) once every echo has arrived."""
    payload = chat_message(args.size)
    echoed = 0
    all_echoed = asyncio.get_running_loop().create_future()

    def on_reply(client: Client) -> None:
        nonlocal echoed
        echoed += 1
        if echoed == args.connections and not all_echoed.done():
            all_echoed.set_result(None)

    await asyncio.sleep(0.5)
    rss0 = server_rss(args.pid)
    clients = await connect_many(
        args.port,
        args.path,
        args.connections,
        reply_length(len(payload)),
        on_reply,
        batch=250,
        deflate=args.deflate,
    )
    await asyncio.sleep(2.0)  # let the server settle before reading its memory
    rss1 = server_rss(args.pid)
    for client in clients:
        client.transport.write(client.frame(payload))  # type: ignore[union-attr]
    await asyncio.wait_for(all_echoed, 60)
    await asyncio.sleep(2.0)
    rss2 = server_rss(args.pid)
    for client in clients:
        client.transport.abort()  # type: ignore[union-attr]
    return {
        "negotiated": clients[0].extensions or "none",
        "connections": len(clients),
        "idle_kb_per_connection": (rss1 - rss0) / len(clients) / 1024,
        "after_message_kb_per_connection": (rss2 - rss0) / len(clients) / 1024,
    }


#: What each HTTP path must answer: body and media type.
HTTP_ANSWERS = {
    "/plaintext": (b"Hello, World!", "text/plain"),
    "/json": ({"message": "Hello, World!"}, "application/json"),
}
WRK_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def check_http(port: int, path: str) -> None:
    """Fail unless GET ``path`` answers what ``HTTP_ANSWERS`` says it should."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body, media_type = response.read(), response.headers.get_content_type()
    want_body, want_type = HTTP_ANSWERS[path]
    got = json.loads(body) if isinstance(want_body, dict) else body
    if got != want_body or media_type != want_type:
        raise SystemExit(f"{path} answered {media_type} {body!r}")


def wrk_figures(output: str) -> dict[str, float]:
    """Requests, requests/s and latency percentiles (µs) from ``wrk --latency`` output; fails
    on any error or non-2xx/3xx response wrk counted."""
    errors = re.search(r"(Non-2xx or 3xx responses|Socket errors):.*", output)
    if errors:
        raise SystemExit(f"wrk: {errors.group(0)}")
    count, elapsed, unit = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s),", output).groups()  # type: ignore[union-attr]
    figures = {
        "requests": float(count),
        "elapsed_s": float(elapsed) * WRK_UNITS[unit] / 1e6,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
    }
    for pct in ("50", "99"):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)$", output, re.M).groups()  # type: ignore[union-attr]
        figures[f"p{pct}_us"] = float(value) * WRK_UNITS[unit]
    return figures


def wrk(args: argparse.Namespace, seconds: float) -> str:
    """Run wrk for ``seconds`` (rounded to whole seconds, at least 1: all wrk takes)."""
    url = f"http://127.0.0.1:{args.port}{args.path}"
    whole = max(1, round(seconds))
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{whole}s", "--latency", url]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def http(args: argparse.Namespace) -> dict[str, object]:
    """Keep-alive GETs from ``wrk`` (it inherits this process's CPU pinning)."""
    check_http(args.port, args.path)
    wrk(args, args.warmup)
    cpu0, c0 = server_cpu(args.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    output = wrk(args, args.seconds)
    cpu1, c1 = server_cpu(args.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = wrk_figures(output)
    client = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    return {
        **figures,
        "requests_per_server_cpu_s": figures["requests"] / max(cpu1 - cpu0, 1e-9),
        "server_cpu_share": (cpu1 - cpu0) / figures["elapsed_s"],
        "client_cpu_share": client / figures["elapsed_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["echo", "fanout", "scale", "memory", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's pid, for its CPU")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4, help="fan-out messages in flight")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--chat", action="store_true", help="send chat-like JSON text")
    parser.add_argument("--json", action="store_true", help="send a small JSON echo message")
    parser.add_argument("--path", default="/echo", help="the echo endpoint")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    modes = {"echo": echo, "fanout": fanout, "scale": scale, "memory": memory}
    result = http(args) if args.mode == "http" else uvloop.run(modes[args.mode](args))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
