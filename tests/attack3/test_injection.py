"""Envelope and JSON injection, and presence spoofing, from clients: hostile room names,
payloads and metadata reach others exactly as sent and never as roost's own objects; what a
client can make others see as a roost notice, envelope or presence event; API misuse that
should fail with a clear error."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import websockets

from roost.hub.broker import MemoryBroker
from tests.attack3.apps.inproc import make_app
from tests.attack3.harness import Recorder, violations

HOSTILE = [
    'quote"room',
    "back\\slash",
    "ctl\x00\x01\x1f\x7f",
    "line\u2028sep\u2029",
    "emoji \U0001f600 é",
    '"},"roost":"joined","room":"x',
    "</script><script>alert(1)</script>",
    " ",
]


@asynccontextmanager
async def nodes(serve: Any, count: int) -> AsyncIterator[list[int]]:
    """``count`` apps (sharing a MemoryBroker when more than one); their ports."""
    broker = MemoryBroker() if count > 1 else None
    async with AsyncExitStack() as stack:
        ports = []
        for _ in range(count):
            server = await stack.enter_async_context(serve(make_app(broker)))
            ports.append(server.port)
        yield ports


def room_url(port: int, path: str, room: str, **extra: str) -> str:
    query = urllib.parse.urlencode({"room": room, **extra})
    return f"ws://127.0.0.1:{port}{path}?{query}"


@pytest.mark.parametrize("count", [1, 2], ids=["one-node", "two-nodes"])
@pytest.mark.parametrize("room", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_room_names_payloads_and_meta_round_trip(
    serve: Any, count: int, room: str
) -> None:
    """HELD. A room named with quotes, backslashes, control characters, U+2028, emoji or a
    JSON fragment; a payload and a member name of the same; a binary payload that is not
    UTF-8: the envelope, the notices and the join event are valid JSON that carry them
    exactly, and a resume naming that room recovers."""
    async with nodes(serve, count) as ports:
        watcher = Recorder()
        await watcher.connect(room_url(ports[0], "/a", room))
        await watcher.read_until(lambda: watcher.notices(), "joined")
        assert watcher.notices()[0]["room"] == room
        speaker = Recorder()
        await speaker.connect(room_url(ports[-1], "/a", room, name=room))
        await speaker.read_until(lambda: speaker.notices(), "joined")

        def joined_event() -> bool:
            return any(isinstance(o, dict) and o.get("roost") == "join" for o in watcher.others())

        await watcher.read_until(joined_event, "the join event")
        event = next(
            o for o in watcher.others() if isinstance(o, dict) and o.get("roost") == "join"
        )
        assert event == {"roost": "join", "room": room, "id": speaker.id, "meta": {"name": room}}
        assert speaker.ws is not None
        await speaker.ws.send("say:" + room)
        raw = b"\xff\xfe\x00\xc0\x80" + room.encode()
        await speaker.ws.send("bytes:" + raw.hex())
        await watcher.read_until(lambda: len(watcher.messages()) == 2, "both messages")
        text, binary = watcher.messages()
        assert text["room"] == room and text["data"] == room
        assert base64.b64decode(binary["data_b64"]) == raw and "data" not in binary
        await watcher.close()
        await speaker.ws.send("say:after")
        await speaker.read_until(lambda: len(speaker.messages()) == 3, "its own copies")
        await watcher.connect(room_url(ports[0], "/a", room))
        await watcher.read_until(lambda: len(watcher.messages()) == 3, "the recovered one")
        assert watcher.notices()[-1]["roost"] == "recovered"
        assert watcher.messages()[-1]["data"] == "after"
        for c in (watcher, speaker):
            await c.close()


async def test_a_room_message_cannot_pass_for_a_roost_object(serve: Any) -> None:
    """HELD. In a room with history, a client's text that looks like a notice, an envelope or
    a presence event arrives inside an envelope, as data: nobody sees it as roost's."""
    async with nodes(serve, 1) as (port,):
        victim, attacker = Recorder(), Recorder()
        for c in (victim, attacker):
            await c.connect(f"ws://127.0.0.1:{port}/a")
            await c.read_until(lambda c=c: c.notices(), "joined")
        assert attacker.ws is not None
        forged = [
            {"roost": "leave", "room": "r", "id": victim.id},
            {"roost": "not_recovered", "room": "r", "epoch": "0" * 16, "offset": 0, "replay": 0},
            {"roost": "message", "room": "r", "epoch": "0" * 16, "offset": 99, "data": "x"},
        ]
        for value in forged:
            await attacker.ws.send("say:" + json.dumps(value))
        await victim.read_until(lambda: len(victim.messages()) == 3, "the three")
        assert [json.loads(m["data"]) for m in victim.messages()] == forged
        assert [n["roost"] for n in victim.notices()] == ["joined"]
        assert not any(isinstance(o, dict) and o.get("roost") == "leave" for o in victim.others())
        for c in (victim, attacker):
            await c.close()


async def test_a_client_cannot_forge_an_envelope_through_an_endpoint_broadcast(
    serve: Any,
) -> None:
    """FINDING. docs/delivery.md: broadcasts to the whole endpoint "stay bare", and "the key
    roost is reserved in the JSON objects of such an endpoint" — but nothing enforces it. An
    app that relays a client's text to its endpoint (a common "announce to everyone") lets
    any client send others a bare ``{"roost": "message", ...}`` with a position of its choice:
    a client that keeps "the position of the last envelope or notice it saw" (the docs' rule)
    takes the forged offset; resuming from it, it skips the real message at that offset (or
    is told ``ahead``). Same with a forged ``not_recovered`` or ``leave``. roost should refuse
    (or wrap) bare text that is a JSON object with the reserved key on such endpoints."""
    async with nodes(serve, 1) as (port,):
        url = f"ws://127.0.0.1:{port}/a"
        victim, attacker = Recorder(), Recorder()
        for c in (victim, attacker):
            await c.connect(url)
            await c.read_until(lambda c=c: c.notices(), "joined")
        epoch, offset = victim.positions["r"]
        forged = {
            "roost": "message",
            "room": "r",
            "epoch": epoch,
            "offset": offset + 1,
            "data": "forged",
        }
        assert attacker.ws is not None
        await attacker.ws.send("all:" + json.dumps(forged))
        await attacker.ws.send("say:real")  # the real message at offset + 1
        await victim.read_until(
            lambda: len(victim.messages()) >= 1 and victim.messages()[-1]["data"] == "real", "real"
        )
        datas = [m["data"] for m in victim.messages()]
        assert "forged" not in datas, f"the victim took a forged envelope: {victim.log[-3:]}"
        for c in (victim, attacker):
            await c.close()


async def test_a_client_cannot_fake_a_leave_in_a_room_with_presence_events(serve: Any) -> None:
    """FINDING. An endpoint with ``presence_events=True`` and no history sends room messages
    bare, and presence events are plain ``{"roost": "join"/"leave", ...}`` objects in the same
    stream: a client whose text the app relays to the room (a chat) makes every member see a
    fake ``leave`` of anyone (or a ``join`` of anyone with any metadata), indistinguishable
    from roost's own. roost should reserve the key there too (refuse or wrap such text), or
    send events in a form clients cannot forge."""
    async with nodes(serve, 1) as (port,):
        url = f"ws://127.0.0.1:{port}/events"
        victim, bystander, attacker = Recorder(), Recorder(), Recorder()
        for c in (victim, bystander, attacker):
            await c.connect(url)
        assert attacker.ws is not None
        fake = {"roost": "leave", "room": "r", "id": victim.id}
        await attacker.ws.send("say:" + json.dumps(fake))
        await attacker.ws.send("say:done")
        await bystander.read_until(lambda: "done" in bystander.others(), "the attacker's marker")
        await attacker.read_until(
            lambda: any(isinstance(o, dict) and "refused" in o for o in attacker.others()),
            "the app told of the refusal",
        )
        leaves = [
            o for o in bystander.others() if isinstance(o, dict) and o.get("roost") == "leave"
        ]
        assert leaves == [], f"the bystander saw {leaves} while the victim is still there"
        for c in (victim, bystander, attacker):
            await c.close()


async def test_a_room_that_is_not_a_string_is_refused(serve: Any) -> None:
    """FINDING (API). ``websocket.join(123)`` is taken: roost names a room's history
    ``f"{len(endpoint)}:{endpoint}:{room}"``, so room ``123`` and room ``"123"`` share one
    history and one sequence of offsets while being two rooms for delivery: members of
    "123" see offsets skip (silently) and get the other room's messages in their replay, and
    a client's ``roost_resume`` (JSON keys are strings) never matches room 123, so it is told
    ``joined`` instead of ``recovered``. join/broadcast should raise TypeError for a room that
    is not a str."""
    async with nodes(serve, 1) as (port,):
        client = Recorder()
        await client.connect(f"ws://127.0.0.1:{port}/a")
        assert client.ws is not None
        await client.ws.send("joinint:123")
        await client.read_until(
            lambda: any("ok" in o or "error" in o for o in client.others() if isinstance(o, dict)),
            "an answer",
        )
        answer = next(
            o for o in client.others() if isinstance(o, dict) and ("ok" in o or "error" in o)
        )
        assert str(answer.get("error", "")).startswith("TypeError"), answer
        await client.close()


async def test_rooms_123_and_str_123_do_not_share_a_history(serve: Any) -> None:
    """FINDING (API), the consequence of the above: a member of room "123" sees offsets skip,
    with no notice, each time the int room 123 gets a message; and a client resuming room
    "123" gets the int room's messages in its replay."""
    async with nodes(serve, 1) as (port,):
        member = Recorder()
        await member.connect(f"ws://127.0.0.1:{port}/a?room=123")
        await member.read_until(lambda: member.notices(), "joined")
        other = Recorder()
        await other.connect(f"ws://127.0.0.1:{port}/a?room=elsewhere")
        assert other.ws is not None and member.ws is not None
        await other.ws.send("sayint:123:to the int room")
        await other.read_until(
            lambda: any(
                isinstance(o, dict) and ("ok" in o or "error" in o) for o in other.others()
            ),
            "sent (or refused: a room is a str)",
        )
        await member.ws.send("say:to the str room")
        await member.read_until(lambda: member.messages(), "its own message")
        found = violations(member.log, "123")
        await member.close()
        late = Recorder()
        late.positions["123"] = (member.notices()[0]["epoch"], 0)
        await late.connect(f"ws://127.0.0.1:{port}/a?room=123")
        await late.read_until(lambda: late.messages(), "its replay")
        await late.drain(0.2)
        replayed = [m["data"] for m in late.messages()]
        assert (found, replayed) == ([], ["to the str room"])
        for c in (late, other):
            await c.close()


async def test_a_replay_that_is_not_an_int_is_refused_clearly(serve: Any) -> None:
    """FINDING (API, low). ``join(room, replay=1.5)`` or ``replay="3"``: roost raises no
    error to the app; the client is told ``not_recovered`` with reason ``unavailable``
    ("the history could not be read (its store is down)"), which is not what happened, and
    the server logs a traceback. It should raise TypeError at the call."""
    async with nodes(serve, 1) as (port,):
        client = Recorder()
        await client.connect(f"ws://127.0.0.1:{port}/a")
        await client.read_until(lambda: client.notices(), "joined")
        assert client.ws is not None
        await client.ws.send("replay:1.5")

        def answered() -> bool:
            return any(isinstance(o, dict) and ("ok" in o or "error" in o) for o in client.others())

        await client.read_until(answered, "an answer")
        answer = next(
            o for o in client.others() if isinstance(o, dict) and ("ok" in o or "error" in o)
        )
        notices = [(n["room"], n["roost"], n.get("reason")) for n in client.notices()]
        assert str(answer.get("error", "")).startswith("TypeError"), (answer, notices)
        await client.close()


async def test_metadata_that_passes_the_check_works_across_nodes(serve: Any) -> None:
    """FINDING. Metadata is checked as "any JSON value up to 4 KiB" with orjson, which takes
    str subclasses (markupsafe.Markup, an app's own string types); the hub's msgpack codec,
    used to replicate presence between nodes (MemoryBroker here; the relay with
    ``--processes N``), does not. ``join`` then raises ``TypeError: Encoding objects of type
    Name is unsupported`` after the connection was put in the room, held for a replay that
    never starts: it stays a member that no room message ever reaches. Expected: the join
    works (or is refused with a clear error before anything changes)."""
    async with nodes(serve, 2) as (port, _):
        member = Recorder()
        await member.connect(f"ws://127.0.0.1:{port}/a")
        await member.read_until(lambda: member.notices(), "joined")
        assert member.ws is not None
        await member.ws.send("metasub:ann")

        def answered() -> bool:
            return any(isinstance(o, dict) and ("ok" in o or "error" in o) for o in member.others())

        await member.read_until(answered, "an answer")
        answer = next(
            o for o in member.others() if isinstance(o, dict) and ("ok" in o or "error" in o)
        )
        await member.ws.send("whoin:m")
        await member.read_until(
            lambda: any("who" in o for o in member.others() if isinstance(o, dict)), "presence of m"
        )
        who = next(o["who"] for o in member.others() if isinstance(o, dict) and "who" in o)
        in_room = member.id in who
        # Is it reached by room m's messages? A marker to room r follows the one to m.
        other = Recorder()
        await other.connect(f"ws://127.0.0.1:{port}/a")
        assert other.ws is not None
        await other.ws.send("sayin:m:to m")
        await other.read_until(lambda: {"ok": "sayin"} in other.others(), "sent to m")
        await other.ws.send("say:marker")
        await member.read_until(
            lambda: member.messages()[-1:] and member.messages()[-1]["data"] == "marker",
            "the marker",
        )
        reached = [m["data"] for m in member.messages("m")]
        assert (answer, in_room, reached) == ({"ok": "metasub"}, True, ["to m"]), (
            answer,
            f"member of m: {in_room}",
            f"m's messages it got: {reached}",
        )
        for c in (member, other):
            await c.close()


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"name": "x" * 5000}, "ValueError: room metadata is 5011 bytes as JSON; at most 4096"),
        (
            [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            "ok",
        ),
        (
            json.loads("[" * 300 + "]" * 300),
            "TypeError: room metadata must be a JSON value: Recursion limit reached",
        ),
    ],
    ids=["over-4-KiB", "nested-40", "nested-300"],
)
async def test_bad_metadata_gets_a_clear_error(serve: Any, meta: Any, error: str) -> None:
    """HELD. Metadata over 4 KiB is refused with a ValueError saying the size and the limit."""
    async with nodes(serve, 1) as (port,):
        client = Recorder()
        await client.connect(f"ws://127.0.0.1:{port}/a")
        assert client.ws is not None
        await client.ws.send("meta:" + json.dumps(meta))

        def answered() -> bool:
            return any(isinstance(o, dict) and ("ok" in o or "error" in o) for o in client.others())

        await client.read_until(answered, "an answer")
        answer = next(
            o for o in client.others() if isinstance(o, dict) and ("ok" in o or "error" in o)
        )
        assert answer.get("error", "ok") == error, answer
        await client.close()


async def test_leaving_and_joining_again_replays_nothing_twice(serve: Any) -> None:
    """FINDING. A client resumes room r from (E, 2) and gets 3..5; later, on the same
    connection, the app takes it out of r and puts it back (a user switching rooms). roost
    uses the position from the handshake again: the client is told ``recovered`` at (E, 2)
    and gets 3..5 a second time (plus what it really missed). The handshake's position should
    serve the first join only (a later join: ``joined``, or a position roost tracks)."""
    async with nodes(serve, 1) as (port,):
        url = f"ws://127.0.0.1:{port}/a"
        feeder = Recorder()
        await feeder.connect(url)
        await feeder.read_until(lambda: feeder.notices(), "joined")
        assert feeder.ws is not None
        for i in range(1, 3):
            await feeder.ws.send(f"say:{i}")
        await feeder.read_until(lambda: len(feeder.messages()) == 2, "two")
        client = Recorder()
        client.positions["r"] = feeder.positions["r"]  # (E, 2)
        await client.connect(url)
        await client.read_until(lambda: client.notices(), "recovered")
        for i in range(3, 6):
            await feeder.ws.send(f"say:{i}")
        await client.read_until(lambda: len(client.messages()) == 3, "3..5")
        assert client.ws is not None
        await client.ws.send("leave:r")
        await client.read_until(lambda: {"ok": "left r"} in client.others(), "left")
        await feeder.ws.send("say:6")  # missed while out of the room
        await feeder.read_until(lambda: len(feeder.messages()) == 6, "6")
        await client.ws.send("join:r")
        await client.read_until(lambda: {"ok": "joined r"} in client.others(), "joined again")
        await client.drain(0.2)
        datas = [m["data"] for m in client.messages()]
        assert len(datas) == len(set(datas)), (
            f"delivered twice: {datas}; notices {client.notices()}"
        )
        for c in (client, feeder):
            await c.close()


async def test_two_different_raw_room_names_do_not_collide(serve: Any) -> None:
    """FINDING (low). Query parameters are decoded with invalid UTF-8 replaced by U+FFFD, so
    ``?room=%FF`` and ``?room=%FE`` (or ``%C0%80``) name the same room, "\\ufffd": a client
    that asks for one joins the other's room, its history and presence. An app that takes
    room names from the query has no way to tell; roost could refuse such a request (400) or
    keep the bytes apart."""
    async with nodes(serve, 1) as (port,):
        first, second = Recorder(), Recorder()
        # Was a FINDING: both named the room "\ufffd". Now such a handshake is refused.
        for bad in ("%FF", "%FE", "%C0%80"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await first.connect(f"ws://127.0.0.1:{port}/a?room={bad}")
            assert refused.value.response.status_code == 400
            assert b"UTF-8" in refused.value.response.body
        await first.connect(f"ws://127.0.0.1:{port}/a?room=%C3%BF")  # "\u00ff", valid
        await second.connect(f"ws://127.0.0.1:{port}/a?room=%C3%BE")
        for c in (first, second):
            await c.read_until(lambda c=c: c.notices(), "joined")
        assert second.ws is not None
        await second.ws.send("say:hello")
        await second.read_until(lambda: second.messages(), "its own message")
        await first.drain(0.2)
        rooms = (first.notices()[0]["room"], second.notices()[0]["room"])
        assert first.messages() == [], f"rooms {rooms!r}: the %FF client got the %FE room's message"
        for c in (first, second):
            await c.close()


async def test_exclude_self_leaves_no_unexplained_gap_for_the_sender(serve: Any) -> None:
    """FINDING (low, docs). In a room with history, ``broadcast(..., exclude_self=True)``
    takes an offset the sender never gets: the sender's stream jumps from (E, n) to
    (E, n + 2) with no notice, which a client checking offsets (the docs' promise: no gap,
    and anything lost is said with not_recovered) cannot tell from a lost message; and when
    it reconnects from (E, n) it is sent its own message back (the new connection is not the
    one excluded). The docs say nothing of it; either the sender should get a marker for its
    own message, or the docs should tell clients that gaps can be their own messages."""
    async with nodes(serve, 1) as (port,):
        url = f"ws://127.0.0.1:{port}/a"
        sender, other = Recorder(), Recorder()
        for c in (sender, other):
            await c.connect(url)
            await c.read_until(lambda c=c: c.notices(), "joined")
        assert sender.ws is not None and other.ws is not None
        await other.ws.send("say:1")
        await sender.ws.send("others:2")
        await other.read_until(lambda: len(other.messages()) == 2, "2")
        await other.ws.send("say:3")
        await sender.read_until(
            lambda: sender.messages() and sender.messages()[-1]["data"] == "3", "3"
        )
        assert violations(sender.log, "r") == [], [m["offset"] for m in sender.messages()]
        for c in (sender, other):
            await c.close()
