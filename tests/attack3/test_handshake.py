"""``roost_resume`` at the handshake, from a raw client: every malformed value is refused with
400 naming the parameter, before the handler runs; the largest valid value is taken; a
position for a room the client never joins, or for another endpoint's room, leaks nothing; a
duplicated parameter."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tests.attack3.apps.inproc import make_app
from tests.attack3.harness import Recorder
from tests.raw_ws import connect

EPOCH = "0123456789abcdef"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


BAD = {
    "not-json": "{",
    "empty": "",
    "a-list": "[]",
    "a-string": '"r"',
    "null": "null",
    "position-not-a-list": '{"r": "x"}',
    "three-items": '{"r": ["e", 1, 2]}',
    "one-item": '{"r": ["e"]}',
    "offset-negative": '{"r": ["e", -1]}',
    "offset-float": '{"r": ["e", 1.0]}',
    "offset-bool": '{"r": ["e", true]}',
    "offset-2**63": '{"r": ["e", 9223372036854775808]}',
    "offset-2**64": '{"r": ["e", 18446744073709551616]}',
    "offset-huge": '{"r": ["e", 1' + "0" * 400 + "]}",
    "offset-string": '{"r": ["e", "1"]}',
    "epoch-empty": '{"r": ["", 1]}',
    "epoch-65": '{"r": ["' + "e" * 65 + '", 1]}',
    "epoch-number": '{"r": [1, 1]}',
    "epoch-null": '{"r": [null, 1]}',
    "nan": '{"r": ["e", NaN]}',
    "lone-surrogate-room": '{"\\ud800": ["e", 1]}',
    "deeply-nested": "[" * 1000 + "]" * 1000,
    "129-rooms": json.dumps({f"r{i}": ["e", 1] for i in range(129)}),
    "trailing-garbage": '{"r": ["e", 1]} x',
}


@pytest.mark.parametrize("raw", list(BAD.values()), ids=list(BAD))
async def test_a_malformed_resume_is_refused_with_400(serve: Any, raw: str) -> None:
    """HELD. Each malformed value: 400 whose body names roost_resume; the server goes on."""
    app = make_app()
    async with serve(app) as server:
        _, writer, head = await connect(server.port, f"/a?roost_resume={q(raw)}")
        writer.close()
        assert head.startswith(b"HTTP/1.1 400"), head[:200]
        ok = Recorder()
        await ok.connect(f"ws://127.0.0.1:{server.port}/a")
        await ok.read_until(lambda: ok.notices(), "a joined notice after the bad request")
        await ok.close()


async def test_the_400_says_what_is_wrong(serve: Any) -> None:
    """HELD. The body names the parameter (and the room, cut to 64 characters)."""
    from tests.http_client import read_response

    app = make_app()
    async with serve(app) as server:
        room = "x" * 5000
        raw = json.dumps({room: ["e", -1]})
        reader, writer, head = await connect(server.port, f"/a?roost_resume={q(raw)}")
        assert head.startswith(b"HTTP/1.1 400")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        writer.close()
        assert b"roost_resume" in body and len(body) < 400, body[:500]
        del read_response


async def test_the_largest_valid_resume_is_accepted(serve: Any) -> None:
    """HELD. 128 rooms (the documented most), offsets up to
    2**63-1: accepted; the room the client joins gets the right notice (``ahead`` for 2**63-1
    in the current epoch)."""
    app = make_app()
    async with serve(app) as server:
        first = Recorder()
        await first.connect(f"ws://127.0.0.1:{server.port}/a")
        await first.read_until(lambda: first.notices(), "joined")
        epoch = first.notices()[0]["epoch"]
        client = Recorder()
        client.positions = {f"{i}": ("e", 1) for i in range(127)}
        client.positions["r"] = (epoch, 2**63 - 1)
        await client.connect(f"ws://127.0.0.1:{server.port}/a")
        await client.read_until(lambda: client.notices(), "the notice")
        notice = client.notices()[0]
        assert (notice["roost"], notice["reason"]) == ("not_recovered", "ahead"), notice
        for c in (first, client):
            await c.close()


async def test_a_resume_of_the_most_rooms_fits_the_request(serve: Any) -> None:
    """Was a FINDING (low, docs): docs/delivery.md allowed 256 rooms, yet positions as roost
    hands them out (16 hex digit epochs), for rooms with 20-character names, URL-encoded as
    the docs show: 256 of them make a request target of ~18 KB, over ``max_header_size``
    (16 KiB), and the handshake got 414. The most is now 128, which fits with room to spare."""
    app = make_app()
    async with serve(app) as server:
        client = Recorder()
        client.positions = {
            f"conversation-{i:07d}": ("5c0f9e2a41d7b683", 12345) for i in range(128)
        }
        await client.connect(f"ws://127.0.0.1:{server.port}/a")
        await client.read_until(lambda: client.notices(), "the notice")
        assert client.notices()[0]["roost"] == "joined"  # accepted; r was not among them
        await client.close()


async def test_a_position_from_another_endpoint_or_room_leaks_nothing(serve: Any) -> None:
    """HELD. Endpoints /a and /b both have a room "r". A client of /b that resumes room r with
    the epoch of /a's room r (and offset 0) is told ``not_recovered`` (``epoch``) and never
    gets /a's messages; a position for a room it never joins changes nothing."""
    app = make_app()
    async with serve(app) as server:
        a = Recorder()
        await a.connect(f"ws://127.0.0.1:{server.port}/a")
        await a.read_until(lambda: a.notices(), "joined /a")
        assert a.ws is not None
        for i in range(3):
            await a.ws.send(f"say:secret of a {i}")
        await a.read_until(lambda: len(a.messages()) == 3, "a's messages")
        epoch_a = a.notices()[0]["epoch"]
        b = Recorder()
        b.positions = {"r": (epoch_a, 0), "never-joined": (epoch_a, 0)}
        await b.connect(f"ws://127.0.0.1:{server.port}/b?replay=5")
        await b.read_until(lambda: b.notices(), "b's notice")
        await b.drain(0.2)
        notice = b.notices()[0]
        assert (notice["roost"], notice.get("reason")) == ("not_recovered", "epoch"), notice
        assert notice["epoch"] != epoch_a
        assert b.messages() == [] and [n["room"] for n in b.notices()] == ["r"], b.log
        for c in (a, b):
            await c.close()


async def test_a_duplicated_resume_parameter_is_refused(serve: Any) -> None:
    """FINDING (low). ``roost_resume`` given twice, a valid value then a malformed one: the
    second is ignored without a word (the connection opens and resumes from the first),
    while the same two in the other order are refused with 400. Input that names two
    different positions for one connection is ambiguous (a proxy or a log may read the other
    one); it should be refused with 400 like any other bad ``roost_resume``."""
    app = make_app()
    async with serve(app) as server:
        good = q(json.dumps({"r": [EPOCH, 0]}))
        bad = q("{garbage")
        _, w1, head1 = await connect(server.port, f"/a?roost_resume={bad}&roost_resume={good}")
        _, w2, head2 = await connect(server.port, f"/a?roost_resume={good}&roost_resume={bad}")
        w1.close()
        w2.close()
        assert head1.startswith(b"HTTP/1.1 400"), head1[:100]
        assert head2.startswith(b"HTTP/1.1 400"), head2[:100]
