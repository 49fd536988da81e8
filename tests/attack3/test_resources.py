"""Bounded memory whatever clients send or fail to read: clients that resume from offset 0 of
big histories and never read their replay, many clients resuming at once, a live room while a
joiner is stuck, join/leave storms with presence events. Memory is read from the server
process's RSS (/proc), from the outside."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse

import pytest

from tests.attack3.harness import Recorder, rss_kib, stalled_after
from tests.integration.cluster import ClusterServer, children

pytestmark = [
    pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc"),
    pytest.mark.timeout(240),
]

APP = "tests.attack3.apps.hist:app"
MiB = 1024


async def filled(server: ClusterServer, count: int, size: int) -> tuple[Recorder, str]:
    """A member of room r that had ``count`` messages of ``size`` bytes broadcast (and got
    them all); the room's epoch."""
    probe = Recorder()
    await probe.connect(f"ws://127.0.0.1:{server.port}/room")
    await probe.read_until(lambda: probe.notices(), "joined")
    assert probe.ws is not None
    await probe.ws.send(f"fill:{count}:{size}")
    await probe.read_until(lambda: len(probe.messages()) >= count, "the probe's copies", 120)
    return probe, probe.notices()[0]["epoch"]


def from_zero(epoch: str) -> str:
    return "/room?roost_resume=" + urllib.parse.quote(json.dumps({"r": [epoch, 0]}))


def notice_in(frames: list[bytes]) -> dict[str, object]:
    """The join notice among the first frames a client read (presence events aside)."""
    for frame in frames:
        value = json.loads(frame)
        if value.get("roost") in ("joined", "recovered", "not_recovered"):
            return value  # type: ignore[no-any-return]
    raise AssertionError(f"no notice in {frames!r}")


def total_rss(pids: set[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


async def stuck_resumers(server: ClusterServer, epoch: str, count: int) -> list[object]:
    """``count`` clients that resume room r from offset 0, one after another, each reading
    only its hello and its notice (so its history read is done), then nothing."""
    socks = []
    for _ in range(count):
        # Its hello, its notice (a presence event may come first) and maybe one message.
        sock, frames = await stalled_after(server.port, from_zero(epoch), 3)
        assert notice_in(frames)["roost"] == "recovered", frames[:2]
        socks.append(sock)
    return socks


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "processes-2"])
async def test_clients_stuck_in_a_16_mib_replay_cost_the_server_little_each(processes: int) -> None:
    """FINDING with ``--processes 2`` (held in one process). A room keeps 1,000 messages of
    16 KiB (16 MiB); clients resume it from offset 0, read their notice and then nothing.
    In one process each costs the server almost nothing (its replay goes out at the pace it
    reads, from the history itself). With --processes 2 each one's worker holds a copy of the
    whole replay, decoded from the relay's HISTORY frame, for as long as the client stays
    (forever with ``ping_interval=None``; ~40 s with the default pings, so a client that
    reconnects keeps it up): 8 such clients grew the workers by ~150 MiB, ~19 MiB each."""
    flags = ("--processes", "2") if processes == 2 else ()
    server = await ClusterServer(
        *flags, cli=True, app=APP, env={"A3_SIZE": "1000", "A3_PING": "none"}
    ).ready()
    socks: list[object] = []
    try:
        probe, epoch = await filled(server, 1000, 16000)
        pids = children(server.proc.pid) if processes == 2 else {server.proc.pid}
        socks += await stuck_resumers(server, epoch, 2)  # warm up: allocator, link buffers
        before = total_rss(pids)
        socks += await stuck_resumers(server, epoch, 8)
        grown = total_rss(pids) - before
        # Still serving: a live message reaches the probe.
        assert probe.ws is not None
        await probe.ws.send("say:live")
        await probe.read_until(lambda: probe.messages()[-1]["data"] == "live", "a live message")
        assert grown < 32 * MiB, f"8 stuck resumers grew the server by {grown // MiB} MiB"
        await probe.close()
    finally:
        for sock in socks:
            sock.close()  # type: ignore[attr-defined]
        await server.stop()


async def test_clients_resuming_a_big_history_at_once_all_recover() -> None:
    """FINDING. docs/scaling.md: "A worker restarts ...: nothing is lost. A client that was on
    it reconnects to any worker, resumes from its last offset, and gets every message it
    missed (recovered)". Eight clients that reconnect at once (as after a restart), all
    reading, each owed the room's whole 16 MiB history: the relay's answers to their reads
    go past the 32 MiB it queues for a worker, so it drops the later answers (and live
    messages for that worker); those clients wait 5 s and get ``not_recovered``, reason
    ``unavailable``, with nothing replayed, though the history holds every message. In our
    runs 5 of 8 lost their replay (and 2 of 16 with 4 KiB messages)."""
    server = await ClusterServer(
        "--processes", "2", cli=True, app=APP, env={"A3_SIZE": "1000", "A3_PING": "none"}
    ).ready()
    try:
        probe, epoch = await filled(server, 1000, 16000)
        herd = [Recorder() for _ in range(8)]
        for client in herd:
            client.positions["r"] = (epoch, 0)
        url = f"ws://127.0.0.1:{server.port}/room"
        await asyncio.gather(*(client.connect(url) for client in herd))

        async def replayed(client: Recorder) -> None:
            def done() -> bool:
                notices = client.notices()
                return bool(notices) and len(client.messages()) >= notices[-1]["replay"]

            await client.read_until(done, "its notice and replay", 60)

        await asyncio.gather(*(replayed(client) for client in herd))
        outcomes = [
            (c.notices()[-1]["roost"], c.notices()[-1].get("reason"), len(c.messages()))
            for c in herd
        ]
        assert outcomes == [("recovered", None, 1000)] * 8, outcomes
        for client in [probe, *herd]:
            await client.close()
    finally:
        await server.stop()


@pytest.mark.parametrize("stuck", [False, True], ids=["control", "stuck-joiner"])
async def test_a_joiner_stuck_in_its_replay_holds_no_more_than_the_history(stuck: bool) -> None:
    """FINDING (one process). A room keeps 100 messages of 128 KiB (12.5 MiB). A client
    resumes it from offset 0 and never reads past its notice, so its replay never ends;
    meanwhile 999 more messages are broadcast to the room. Every live message is kept for
    it in its catch-up (up to 1,000 messages, whatever their size and the room's ``size``):
    the server grows by ~125 MiB, ten times the history, and stays so as long as the client
    does (forever with ``ping_interval=None``). With 1 MiB messages (the default
    ``max_message_size``) that is 1 GiB per room. The control (no stuck joiner) grows by
    almost nothing."""
    server = await ClusterServer(
        cli=True, app=APP, env={"A3_SIZE": "100", "A3_PING": "none"}
    ).ready()
    sock = None
    try:
        probe, epoch = await filled(server, 100, 131072)
        if stuck:
            sock, frames = await stalled_after(server.port, from_zero(epoch), 3)
            assert notice_in(frames)["roost"] == "recovered"
        before = rss_kib(server.proc.pid)
        assert probe.ws is not None
        await probe.ws.send("fill:999:131072")
        await probe.read_until(lambda: len(probe.messages()) >= 1099, "the live messages", 120)
        grown = rss_kib(server.proc.pid) - before
        assert grown < 37 * MiB, f"the server grew by {grown // MiB} MiB (history: 12.5 MiB)"
        await probe.close()
    finally:
        if sock is not None:
            sock.close()
        await server.stop()
