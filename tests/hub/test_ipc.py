"""The relay of ``--processes`` (roost.hub.ipc): it bounds what it queues for a worker that
does not read, refuses oversized frames with an error and keeps the link; IpcBroker refuses
to send what the relay would refuse."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from roost.hub.ipc import IpcBroker, Kind, Relay
from tests.timing import seconds

HEADER = struct.Struct("!IB")
RELAY = """
import asyncio, logging, socket, sys
from roost.hub.ipc import Relay
logging.basicConfig(level=logging.INFO)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1])
sock.listen()
sock.setblocking(False)
print("ready", flush=True)
relay = Relay(max_buffer=int(sys.argv[2]), max_frame=int(sys.argv[3]))
asyncio.run(relay.serve(sock))
"""
MAX_BUFFER = 1024 * 1024
MAX_FRAME = 256 * 1024


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    size, kind = HEADER.unpack(await reader.readexactly(HEADER.size))
    return kind, await reader.readexactly(size)


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


@asynccontextmanager
async def relay_process() -> AsyncIterator[tuple[str, subprocess.Popen[str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "hub.sock")
        proc = subprocess.Popen(
            [sys.executable, "-c", RELAY, path, str(MAX_BUFFER), str(MAX_FRAME)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert await asyncio.to_thread(proc.stdout.readline) == "ready\n"
            yield path, proc
        finally:
            proc.kill()
            proc.wait()


async def worker(path: str, node: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A fake worker speaking the relay's framing; returns once the relay has taken it in."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(frame(Kind.HELLO, node.encode()))
    assert await asyncio.wait_for(read_frame(reader), seconds(5)) == (Kind.HELLO, b"")
    return reader, writer


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_a_stalled_worker_gets_a_bounded_queue_and_the_others_everything() -> None:
    async with relay_process() as (path, proc):
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(path)
        stalled.sendall(frame(Kind.HELLO, b"stalled"))  # ... and then it never reads
        reader, reader_w = await worker(path, "reader")
        _, sender = await worker(path, "sender")
        baseline = peak_rss_kib(proc.pid)
        # 64 MiB through the relay, 64 times its bound, in batches the reading worker keeps up
        # with (a reader more than MAX_BUFFER behind would have frames dropped too).
        batches, batch, size = 128, 8, 64 * 1024
        for n in range(batches):
            for i in range(n * batch, (n + 1) * batch):
                sender.write(frame(Kind.MESSAGE, i.to_bytes(8, "big") + b"x" * (size - 8)))
            await sender.drain()
            for i in range(n * batch, (n + 1) * batch):  # the reading worker gets every frame
                kind, payload = await asyncio.wait_for(read_frame(reader), seconds(10))
                assert kind == Kind.MESSAGE
                assert payload[:8] == i.to_bytes(8, "big")
        growth_mib = (peak_rss_kib(proc.pid) - baseline) / 1024
        assert growth_mib < 16, f"the relay grew by {growth_mib:.0f} MiB"

        # The stalled worker reads again: frames flow to it again, and the relay says how
        # many it dropped meanwhile.
        stalled.setblocking(False)
        marker = frame(Kind.MESSAGE, b"marker")
        received = b""

        async def got_marker() -> bool:
            nonlocal received
            sender.write(marker)
            await sender.drain()
            for _ in range(20):
                try:
                    received += stalled.recv(1 << 20)
                except BlockingIOError:
                    await asyncio.sleep(0.05)
                if received.endswith(marker):
                    return True
                received = received[-len(marker) :]
            return False

        for _ in range(100):
            if await got_marker():
                break
        else:
            raise AssertionError("the stalled worker never got messages again")
        stalled.close()
        reader_w.close()
        sender.close()
        proc.kill()
        _, log = await asyncio.to_thread(proc.communicate)
    assert log.count("worker stalled is not reading: dropping hub messages for it") == 1
    dropped = re.search(r"worker stalled is reading again; (\d+) hub messages for it", log)
    assert dropped is not None and int(dropped.group(1)) > 0


async def test_an_oversized_frame_is_refused_and_the_link_stays_up() -> None:
    async with relay_process() as (path, proc):
        reader, _ = await worker(path, "reader")
        sender_r, sender = await worker(path, "sender")
        sender.write(frame(Kind.MESSAGE, b"y" * (MAX_FRAME + 1)))
        kind, reason = await asyncio.wait_for(read_frame(sender_r), seconds(5))
        assert kind == Kind.REFUSED
        assert reason.decode() == (
            f"frame of {MAX_FRAME + 1} bytes refused: the relay's limit is {MAX_FRAME} bytes"
        )
        sender.write(frame(Kind.MESSAGE, b"after"))
        assert await asyncio.wait_for(read_frame(reader), seconds(5)) == (Kind.MESSAGE, b"after")
        sender.write(frame(7, b"?"))  # an unknown kind is refused too
        assert await asyncio.wait_for(read_frame(sender_r), seconds(5)) == (
            Kind.REFUSED,
            b"unknown frame kind 7",
        )
        assert proc.poll() is None


async def test_ipc_broker_refuses_a_message_over_the_relay_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "hub.sock"))
    sock.listen()
    sock.setblocking(False)
    relay = asyncio.create_task(Relay(max_frame=MAX_FRAME).serve(sock))
    got: asyncio.Queue[bytes] = asyncio.Queue()
    one = IpcBroker(str(tmp_path / "hub.sock"), max_frame=MAX_FRAME)
    two = IpcBroker(str(tmp_path / "hub.sock"), max_frame=MAX_FRAME)
    await one.start("one", lambda _: None)
    await two.start("two", got.put_nowait)
    try:
        one.publish(b"z" * (MAX_FRAME + 1))
        assert one.refused == 1
        assert "over the relay's limit" in caplog.text
        one.publish(b"small")
        assert await asyncio.wait_for(got.get(), seconds(5)) == b"small"
    finally:
        await one.stop("one")
        await two.stop("two")
        relay.cancel()
        sock.close()
