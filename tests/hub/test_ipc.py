"""The relay of ``--processes`` (roost.hub.ipc): it bounds what it queues for a worker that
does not read, refuses oversized frames with an error and keeps the link; IpcBroker refuses
to send what the relay would refuse. As the sequencer and store of rooms with history: one
sequence whatever the worker, every worker sees every message in order, reads answer from
it within bounds, malformed frames are refused, and a worker whose relay is down or silent
gets HistoryUnavailable; a worker whose link stalled repairs the gap from the history."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from roost.hub.history import HistoryUnavailable, Position, RoomHistory
from roost.hub.hub import Hub
from roost.hub.ipc import HistoryFrame, IpcBroker, Kind, Relay, SequencedFrame
from roost.hub.messages import Codec
from roost.server.websocket import WebSocketChannel
from tests.hub.fakes import FakeChannel
from tests.timing import eventually, seconds

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
    """A fake worker speaking the relay's framing; returns once the relay has taken it in
    (its answer names how many other workers it has)."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(frame(Kind.HELLO, node.encode()))
    kind, others = await asyncio.wait_for(read_frame(reader), seconds(5))
    assert kind == Kind.HELLO and others.isdigit()
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
        # Its link closes: the relay ends the burst of drops (one line with its count) and
        # tells the others that worker is gone.
        stalled.close()
        codec = Codec()
        while True:
            kind, payload = await asyncio.wait_for(read_frame(reader), seconds(10))
            header = codec.header(payload) if kind == Kind.MESSAGE else None
            if header is not None and header.t == "gone":
                break
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


# -- rooms with history ----------------------------------------------------------------------

CONFIG = RoomHistory(size=100, ttl=600)


@asynccontextmanager
async def relay_in_loop(path: str, **options: Any) -> AsyncIterator[Relay]:
    """A relay serving on the Unix socket ``path`` in this loop, until the block ends."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    sock.setblocking(False)
    relay = Relay(**options)
    task = asyncio.create_task(relay.serve(sock))
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


Seen = list[tuple[str, int, bytes]]


@asynccontextmanager
async def linked(path: str, node: str, **options: Any) -> AsyncIterator[tuple[IpcBroker, Seen]]:
    """A started IpcBroker and the sequenced messages it is handed, in order."""
    seen: Seen = []
    broker = IpcBroker(path, **options)
    await broker.start(node, lambda _: None, lambda e, o, b: seen.append((e, o, b)))
    try:
        yield broker, seen
    finally:
        await broker.stop(node)


async def test_two_workers_sequencing_one_room_make_one_sequence_every_worker_sees(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "hub.sock")
    async with (
        relay_in_loop(path) as relay,
        linked(path, "one") as (one, one_seen),
        linked(path, "two") as (two, two_seen),
        linked(path, "quiet") as (_, quiet_seen),
    ):

        async def send(broker: IpcBroker, name: str) -> None:
            for i in range(0, 200, 20):  # 20 in flight at a time
                await asyncio.gather(
                    *(
                        broker.sequence("room", CONFIG, f"{name}{n}".encode())
                        for n in range(i, i + 20)
                    )
                )

        await asyncio.gather(send(one, "a"), send(two, "b"))
        await eventually(lambda: len(one_seen) == len(two_seen) == len(quiet_seen) == 400)
        assert one_seen == two_seen == quiet_seen
        epochs = {e for e, _, _ in one_seen}
        assert len(epochs) == 1
        assert [o for _, o, _ in one_seen] == list(range(1, 401))
        bodies = [b.decode() for _, _, b in one_seen]
        for name in "ab":  # each sender's messages keep the order it sent them in
            assert [b for b in bodies if b[0] == name] == [f"{name}{n}" for n in range(200)]
        assert len(relay.history) == 1


async def test_sequence_returns_once_the_sender_has_the_message(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with relay_in_loop(path), linked(path, "one") as (one, seen):
        for i in range(5):
            await one.sequence("room", CONFIG, str(i).encode())
            assert [b for _, _, b in seen] == [str(n).encode() for n in range(i + 1)]


async def test_reads_answer_from_the_relays_history(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    small = RoomHistory(size=3, ttl=600)
    async with (
        relay_in_loop(path),
        linked(path, "one") as (one, seen),
        linked(path, "two") as (two, _),
    ):
        for i in range(5):
            await one.sequence("room", small, str(i).encode())
        epoch = seen[0][0]
        # The other worker reads what this one sequenced: the history is the relay's.
        joined = await two.read_history("room", small, None, 2)
        assert (joined.kind, joined.epoch, joined.start) == ("joined", epoch, 3)
        assert joined.entries == [(4, b"3"), (5, b"4")]
        recovered = await two.read_history("room", small, Position(epoch, 3), 0)
        assert (recovered.kind, recovered.start, recovered.entries) == (
            "recovered",
            3,
            [(4, b"3"), (5, b"4")],
        )
        trimmed = await two.read_history("room", small, Position(epoch, 1), 1)
        assert (trimmed.kind, trimmed.reason, trimmed.entries) == (
            "not_recovered",
            "trimmed",
            [(5, b"4")],
        )
        other = await two.read_history("room", small, Position("0123456789abcdef", 2), 0)
        assert (other.kind, other.reason, other.epoch) == ("not_recovered", "epoch", epoch)
        # A replay larger than the room is the whole room.
        everything = await two.read_history("room", small, None, 10**12)
        assert [o for o, _ in everything.entries] == [3, 4, 5]
        fresh = await two.read_history("elsewhere", small, None, 5)
        assert fresh.kind == "joined" and fresh.epoch != epoch and fresh.entries == []


async def test_an_answer_over_the_frame_limit_is_cut_to_the_newest_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "hub.sock")
    limit = 4096
    async with (
        relay_in_loop(path, max_frame=limit),
        linked(path, "one", max_frame=limit) as (
            one,
            seen,
        ),
    ):
        for i in range(20):
            await one.sequence("room", CONFIG, str(i).encode() * 1000)
        epoch = seen[0][0]
        resumed = await one.read_history("room", CONFIG, Position(epoch, 0), 0)
        assert (resumed.kind, resumed.reason) == ("not_recovered", "trimmed")
        offsets = [o for o, _ in resumed.entries]
        assert offsets and offsets[-1] == 20 and offsets == list(range(offsets[0], 21))
        assert resumed.start == offsets[0] - 1
        assert sum(len(b) for _, b in resumed.entries) <= limit
        joined = await one.read_history("room", CONFIG, None, 20)
        assert joined.kind == "joined" and [o for o, _ in joined.entries] == offsets
    assert "over the frame limit: sending the newest" in caplog.text


async def test_malformed_history_frames_are_refused_and_the_link_stays_up(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    pack = msgspec.msgpack.encode
    async with relay_in_loop(path) as relay:
        reader, writer = await worker(path, "attacker")

        async def refused(kind: Kind, payload: bytes) -> str:
            writer.write(frame(kind, payload))
            answer_kind, reason = await asyncio.wait_for(read_frame(reader), seconds(5))
            assert answer_kind == Kind.REFUSED, reason
            return reason.decode()

        what = "malformed SEQUENCE frame: "
        assert (await refused(Kind.SEQUENCE, b"\xc1")).startswith(what)  # not msgpack
        assert (await refused(Kind.SEQUENCE, pack([1, 2, 3]))).startswith(what)
        assert "Expected `str`" in await refused(Kind.SEQUENCE, pack([1, 2, 3, 4.0, b"x"]))
        assert "RoomHistory.size" in await refused(Kind.SEQUENCE, pack([1, "k", 0, 60.0, b"x"]))
        nan = await refused(Kind.SEQUENCE, pack([1, "k", 5, float("nan"), b"x"]))
        assert "RoomHistory.ttl" in nan
        assert ">= 1" in await refused(Kind.SEQUENCE, pack([0, "k", 5, 60.0, b"x"]))
        what = "malformed READ frame: "
        assert (await refused(Kind.READ, b"")).startswith(what)
        assert ">= 0" in await refused(Kind.READ, pack([1, "k", 5, 60.0, None, -1]))
        assert (await refused(Kind.READ, pack([1, "k", 5, 60.0, ["e"], 0]))).startswith(what)
        assert ">= 0" in await refused(Kind.READ, pack([1, "k", 5, 60.0, ["e", -3], 0]))
        assert "RoomHistory.size" in await refused(Kind.READ, pack([1, "k", 10**7, 60.0, None, 0]))
        assert relay.refused == 11
        # The link is still up, and well-formed frames are served.
        writer.write(frame(Kind.SEQUENCE, pack([7, "k", 5, 60, b"ok"])))
        kind, payload = await asyncio.wait_for(read_frame(reader), seconds(5))
        assert kind == Kind.SEQUENCED
        sequenced = msgspec.msgpack.decode(payload, type=SequencedFrame)
        assert (sequenced.offset, sequenced.body, sequenced.ack) == (1, b"ok", 7)
        # A replay asked far past the room's size is cut to the room.
        for _ in range(9):
            writer.write(frame(Kind.SEQUENCE, pack([8, "k", 5, 60, b"more"])))
            assert (await asyncio.wait_for(read_frame(reader), seconds(5)))[0] == Kind.SEQUENCED
        writer.write(frame(Kind.READ, pack([9, "k", 5, 60, None, 2**62])))
        kind, payload = await asyncio.wait_for(read_frame(reader), seconds(5))
        assert kind == Kind.HISTORY
        answer = msgspec.msgpack.decode(payload, type=HistoryFrame)
        assert answer.id == 9 and [o for o, _ in answer.entries] == [6, 7, 8, 9, 10]
        writer.close()


async def test_the_relay_keeps_at_most_max_rooms_histories(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with relay_in_loop(path, max_rooms=2) as relay, linked(path, "one") as (one, seen):
        for room in ("a", "b", "c"):
            await one.sequence(room, CONFIG, room.encode())
        assert len(relay.history) == 2
        first = seen[0][0]
        gone = await one.read_history("a", CONFIG, Position(first, 1), 0)  # used least lately
        assert (gone.kind, gone.reason) == ("not_recovered", "epoch")
        assert len(relay.history) == 2


@asynccontextmanager
async def silent_relay(
    path: str, *, hang_up_on_request: bool = False, welcome: bool = True
) -> AsyncIterator[None]:
    """A relay that takes workers in (unless not ``welcome``), then never answers a SEQUENCE
    or READ (or, with ``hang_up_on_request``, closes the link when it gets one)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, _ = await read_frame(reader)
                if kind == Kind.HELLO and welcome:
                    writer.write(frame(Kind.HELLO, b""))
                elif hang_up_on_request:
                    writer.close()
                    return

    server = await asyncio.start_unix_server(handle, path)
    try:
        yield
    finally:
        server.close()


async def test_a_relay_that_does_not_answer_makes_history_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with (
        silent_relay(path, hang_up_on_request=False),
        linked(path, "one", timeout=seconds(0.2)) as (one, _),
    ):
        with pytest.raises(HistoryUnavailable, match="did not answer within"):
            await one.read_history("room", CONFIG, None, 0)
        with pytest.raises(HistoryUnavailable, match="did not answer within"):
            await one.sequence("room", CONFIG, b"x")


async def test_pending_calls_fail_as_soon_as_the_link_is_lost(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with (
        silent_relay(path, hang_up_on_request=True),
        linked(path, "one", timeout=seconds(600)) as (one, _),
    ):
        with pytest.raises(HistoryUnavailable, match="lost the link to the worker relay"):
            await asyncio.wait_for(one.read_history("room", CONFIG, None, 0), seconds(10))
        await eventually(lambda: one.reconnects == 1)  # it linked again: the relay is up
        with pytest.raises(HistoryUnavailable, match="lost the link to the worker relay"):
            await asyncio.wait_for(one.sequence("room", CONFIG, b"x"), seconds(10))


async def test_until_the_relay_takes_the_worker_in_history_is_unavailable(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "hub.sock")
    async with (
        silent_relay(path, welcome=False),
        linked(path, "one", timeout=seconds(0.2)) as (one, _),  # start waits that long
    ):
        with pytest.raises(HistoryUnavailable, match="not reachable"):
            await one.sequence("room", CONFIG, b"x")
        with pytest.raises(HistoryUnavailable, match="not reachable"):
            await one.read_history("room", CONFIG, None, 0)


async def test_without_a_relay_history_is_unavailable_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with linked(path, "one", timeout=seconds(600)) as (one, _):
        with pytest.raises(HistoryUnavailable, match="not reachable"):
            await asyncio.wait_for(one.sequence("room", CONFIG, b"x"), seconds(10))
        with pytest.raises(HistoryUnavailable, match="not reachable"):
            await asyncio.wait_for(one.read_history("room", CONFIG, None, 0), seconds(10))


async def test_a_room_message_over_the_frame_limit_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with (
        relay_in_loop(path, max_frame=MAX_FRAME),
        linked(path, "one", max_frame=MAX_FRAME) as (one, seen),
    ):
        with pytest.raises(HistoryUnavailable, match="over the relay's limit"):
            await one.sequence("room", CONFIG, b"z" * MAX_FRAME)
        assert one.refused == 1
        await one.sequence("room", CONFIG, b"small")
        assert [(o, b) for _, o, b in seen] == [(1, b"small")]


async def test_a_new_relay_has_new_epochs(tmp_path: Path) -> None:
    path = str(tmp_path / "hub.sock")
    async with linked(path, "one") as (one, seen):
        async with relay_in_loop(path):
            await eventually(lambda: one.reconnects == 1)
            await one.sequence("room", CONFIG, b"before")
        before = seen[-1][0]
        async with relay_in_loop(path):  # the relay restarted: its history is empty
            await eventually(lambda: one.reconnects == 2)
            read = await one.read_history("room", CONFIG, Position(before, 1), 0)
            assert (read.kind, read.reason) == ("not_recovered", "epoch")
            await one.sequence("room", CONFIG, b"after")
            assert seen[-1][0] == read.epoch != before and seen[-1][1] == 1


class Proxy:
    """Sits between a worker and the relay on its own Unix socket; while ``flowing`` is clear,
    nothing the relay sends gets through (the worker looks stalled to the relay)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if gate is not None:
                    await gate.wait()
                dst.write(data)
                await dst.drain()
        dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        await asyncio.gather(
            self._pump(reader, up_writer, None), self._pump(up_reader, writer, self.flowing)
        )

    @asynccontextmanager
    async def serving(self, path: str) -> AsyncIterator[None]:
        server = await asyncio.start_unix_server(self._handle, path)
        try:
            yield
        finally:
            server.close()


def offsets(channel: FakeChannel) -> list[int]:
    parsed = [msgspec.json.decode(m) for m in channel.sent]
    return [m["offset"] for m in parsed if m["roost"] == "message"]


async def test_a_stalled_worker_repairs_the_gap_from_the_relays_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = WebSocketChannel.send_nowait

    def send_nowait(self: Any, message: str | bytes, shared: object = None) -> bool:
        if isinstance(self, FakeChannel):  # room broadcasts take the channel's fast path
            return self.send_nowait(message, shared)
        return real(self, message, shared)  # type: ignore[arg-type]

    monkeypatch.setattr(WebSocketChannel, "send_nowait", send_nowait)
    path, behind = str(tmp_path / "hub.sock"), str(tmp_path / "proxy.sock")
    proxy = Proxy(path)
    history = RoomHistory(size=1000, ttl=600)
    stalled, publisher = Hub(IpcBroker(behind)), Hub(IpcBroker(path))
    for hub in (stalled, publisher):
        hub.history_of = lambda endpoint, room: history
    async with relay_in_loop(path, max_buffer=64 * 1024) as relay, proxy.serving(behind):
        await stalled.start()
        await publisher.start()
        try:
            channel = FakeChannel()
            stalled.add("a", "/c", channel)  # type: ignore[arg-type]
            await stalled.join("a", "r")
            await publisher.broadcast("/c", "first", room="r")
            await eventually(lambda: offsets(channel) == [1])
            proxy.flowing.clear()
            # Far more than the relay queues for a worker that does not read (and than the
            # sockets in between hold): the relay drops SEQUENCED frames for it.
            for i in range(300):
                await publisher.broadcast("/c", str(i) + "x" * 8192, room="r")
            assert relay.dropped > 0
            proxy.flowing.set()
            await publisher.broadcast("/c", "last", room="r")  # past the gap: repaired first
            await eventually(lambda: offsets(channel)[-1:] == [302], what="the last message")
            assert offsets(channel) == list(range(1, 303))
            assert b"not_recovered" not in b"".join(
                m.encode() if isinstance(m, str) else m for m in channel.sent
            )
        finally:
            await stalled.stop()
            await publisher.stop()


async def test_a_worker_that_starts_knows_the_others_presence_at_once(tmp_path: Path) -> None:
    """The relay tells a new worker how many others there are, and its hub waits for their
    state before it serves: presence is whole from the start."""
    path = str(tmp_path / "hub.sock")
    async with relay_in_loop(path):
        first, second = Hub(IpcBroker(path)), Hub(IpcBroker(path))
        await first.start()
        try:
            for i in range(200):
                first.add(f"c{i}", "/chat", FakeChannel())  # type: ignore[arg-type]
                await first.join(f"c{i}", "r", {"n": i})
            await second.start()
            try:
                assert second.broker is not None and second.broker.peers == 1
                members = await second.presence("/chat", "r")  # no waiting
                assert len(members) == 200 and members["c7"] == {"n": 7}
            finally:
                await second.stop()
        finally:
            await first.stop()
