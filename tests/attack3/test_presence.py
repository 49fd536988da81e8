"""Presence with metadata and join/leave events under storms: many clients joining and
leaving a room with big metadata while some members never read; what presence says after."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from typing import Any

import pytest
import websockets

from tests.attack3.apps.inproc import make_app
from tests.attack3.harness import Recorder
from tests.raw_ws import never_reading_client
from tests.timing import eventually, seconds


@pytest.mark.timeout(120)
async def test_a_join_leave_storm_with_big_metadata_stays_bounded(serve: Any) -> None:
    """HELD. 600 clients join room r with 4 KiB of metadata and leave, 50 at a time, while
    three members never read: each event goes to every member (docs: N² messages); a
    reading member sees every join, with its metadata, before the matching leave; afterwards
    presence holds only the members left (the reader, and the never-readers unless their
    slow-consumer limit closed them), and the server still serves."""
    app = make_app()
    name = "n" * 4000
    async with serve(app) as server:
        stuck: list[socket.socket] = [
            await never_reading_client(server.port, "/a") for _ in range(3)
        ]
        observer = Recorder()
        # max_queue=None: its client library reads everything meanwhile (into memory).
        await observer.connect(f"ws://127.0.0.1:{server.port}/a", max_queue=None)
        await observer.read_until(lambda: observer.notices(), "joined")

        async def churn() -> None:
            query = urllib.parse.urlencode({"name": name})
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/a?{query}", ping_interval=None, max_queue=None
            ) as ws:  # max_queue=None: it reads the events it is sent, so its close is quick
                await asyncio.wait_for(ws.recv(), seconds(10))  # hello
                await asyncio.wait_for(ws.recv(), seconds(10))  # joined: it is a member

        for _ in range(12):
            await asyncio.gather(*(churn() for _ in range(50)))

        async def churners_gone() -> bool:
            members = await app.presence("/a", "r")
            return observer.id in members and len(members) <= 4

        await eventually(churners_gone, 20, "presence back to the members that stayed")
        await observer.drain(0.5)
        events = [
            o
            for o in observer.others()
            if isinstance(o, dict) and o.get("roost") in ("join", "leave")
        ]
        joins = {e["id"] for e in events if e["roost"] == "join"}
        leaves = [e["id"] for e in events if e["roost"] == "leave"]
        assert len(joins) == 600 and set(leaves) >= joins, (len(joins), len(leaves))
        seen: set[str] = set()
        for event in events:
            if event["roost"] == "join":
                seen.add(event["id"])
                assert event["meta"] == {"name": name}
            else:
                assert event["id"] in seen or event["id"] not in joins, "a leave before its join"
        # Still serving: a new member joins and is seen.
        late = Recorder()
        await late.connect(f"ws://127.0.0.1:{server.port}/a")
        await late.read_until(lambda: late.notices(), "joined")
        members = set(await app.presence("/a", "r"))
        assert {observer.id, late.id} <= members and len(members) <= 5
        for sock in stuck:
            sock.close()
        for c in (observer, late):
            await c.close()
