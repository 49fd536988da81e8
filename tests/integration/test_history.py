"""Rooms with history over real sockets: a client that drops and comes back gets every message
exactly once and in order, while publishing goes on; in one process, and moving between two
nodes that share a MemoryBroker (which sequences and stores as Redis does)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest
import websockets

from roost import RoomHistory, Roost
from roost.hub.broker import MemoryBroker
from tests.history_client import ResumingClient
from tests.http_client import request
from tests.timing import eventually, seconds


def make_app(broker: MemoryBroker | None = None, history: RoomHistory | None = None) -> Roost:
    app = Roost(__file__, broker=broker)

    @app.websocket(
        "/feed",
        history=history or RoomHistory(size=1000, ttl=600),
        presence_events=True,
        ping_interval=None,
    )
    async def feed(websocket, room: str = "r", name: str = "", replay: int = 0):  # type: ignore[no-untyped-def]
        await websocket.join(room, {"name": name} if name else None, replay=replay)
        while True:
            text = await websocket.receive_text()
            if text.startswith("say:"):
                await websocket.broadcast(text[4:], room=room, exclude_self=True)
            elif text == "who":
                await websocket.send_json({"who": await websocket.presence(room)})
            elif text.startswith("bytes:"):
                await websocket.broadcast(text[6:].encode(), room=room)

    @feed.before_connect
    def check(request):  # type: ignore[no-untyped-def]
        return None

    @app.websocket("/plain", ping_interval=None)
    async def plain(websocket):  # type: ignore[no-untyped-def]
        await websocket.join("r")
        while True:
            await websocket.receive_text()

    return app


async def read_until(client: ResumingClient, done: Any, what: str, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not done():
            await client.recv()

    try:
        await asyncio.wait_for(loop(), seconds(timeout))
    except TimeoutError:
        raise AssertionError(
            f"timed out waiting for {what}: {len(client.messages)} messages, "
            f"notices {client.notices[-3:]}, last {client.messages[-3:]}"
        ) from None


def assert_exactly_once_in_order(client: ResumingClient, room: str, count: int) -> None:
    got = client.data(room)
    assert got == [str(i) for i in range(count)], _diff(got, count)
    offsets = [o for r, _, o, _ in client.messages if r == room]
    assert offsets == sorted(set(offsets)), "offsets repeat or go back"
    assert offsets[-1] - offsets[0] == len(offsets) - 1, "offsets skip"


def _diff(got: list[str], count: int) -> str:
    want = [str(i) for i in range(count)]
    missing = sorted(set(want) - set(got), key=int)[:10]
    dups = sorted({x for x in got if got.count(x) > 1}, key=int)[:10]
    return f"{len(got)} messages; missing {missing}; duplicated {dups}"


async def drop_and_resume(
    publish: Any, urls: list[str], total: int, drops: int = 3
) -> ResumingClient:
    """Publish ``total`` messages to room r while a client reads, drops its connection
    (abruptly) ``drops`` times and comes back each time on the next url in turn."""
    client = ResumingClient()
    await client.connect(urls[0])
    await read_until(client, lambda: client.notices, "the joined notice")
    published = 0

    async def publisher() -> None:
        nonlocal published
        for i in range(total):
            await publish(i, str(i))
            published += 1
            if i % 7 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(publisher())
    try:
        for n in range(1, drops + 1):
            await read_until(
                client,
                lambda n=n: len(client.messages) >= total * n // (drops + 2),
                f"message {total * n // (drops + 2)}",
            )
            assert client.ws is not None
            client.ws.transport.abort()  # no close frame: the network went away
            await client.connect(urls[n % len(urls)])
        await task
        await read_until(client, lambda: len(client.messages) >= total, f"all {total} messages")
        await asyncio.sleep(0.05)  # anything more would be a duplicate: let it arrive
        while True:
            try:
                await asyncio.wait_for(client.recv(), 0.05)
            except TimeoutError:
                break
    finally:
        task.cancel()
        await client.close()
    return client


async def test_a_client_that_drops_gets_every_message_once_in_order(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/feed"

        async def publish(i: int, text: str) -> None:
            await app.broadcast("/feed", text, "r")

        client = await drop_and_resume(publish, [url], 600)
    assert_exactly_once_in_order(client, "r", 600)
    kinds = [n["roost"] for n in client.notices]
    assert kinds == ["joined", "recovered", "recovered", "recovered"], kinds


async def test_moving_between_nodes_of_a_cluster_loses_nothing(serve) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    one, two = make_app(broker), make_app(broker)
    async with serve(one) as a, serve(two) as b:
        urls = [f"ws://127.0.0.1:{a.port}/feed", f"ws://127.0.0.1:{b.port}/feed"]

        async def publish(i: int, text: str) -> None:
            await (one if i % 2 else two).broadcast("/feed", text, "r")

        client = await drop_and_resume(publish, urls, 600, drops=4)
    assert_exactly_once_in_order(client, "r", 600)


async def test_envelope_and_notices_as_documented(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/feed"
        async with websockets.connect(url) as ws:
            joined = json.loads(await ws.recv())
            assert joined["roost"] == "joined" and joined["room"] == "r"
            assert joined["offset"] == 0 and joined["replay"] == 0
            assert isinstance(joined["epoch"], str) and len(joined["epoch"]) == 16
            await app.broadcast("/feed", "hello", "r")
            await app.broadcast("/feed", b"\x00\xff", "r")
            await app.broadcast("/feed", {"typed": True}, "r")
            text = json.loads(await ws.recv())
            assert text == {
                "roost": "message",
                "room": "r",
                "epoch": joined["epoch"],
                "offset": 1,
                "data": "hello",
            }
            binary = json.loads(await ws.recv())
            assert binary["offset"] == 2 and binary["data_b64"] == "AP8="
            typed = json.loads(await ws.recv())
            assert typed["offset"] == 3 and json.loads(typed["data"]) == {"typed": True}
        # Endpoints without history keep sending bare payloads.
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/plain") as ws:
            await eventually(lambda: len(app.hub.registry.members("/plain", "r")) == 1)
            await app.broadcast("/plain", "bare", "r")
            assert await ws.recv() == "bare"


async def test_a_new_client_gets_the_last_messages_it_asks_for(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        for i in range(10):
            await app.broadcast("/feed", str(i), "r")
        client = ResumingClient()
        await client.connect(f"ws://127.0.0.1:{server.port}/feed?replay=3")
        await read_until(client, lambda: len(client.messages) == 3, "3 replayed")
        assert client.notices[0]["roost"] == "joined"
        assert client.notices[0]["offset"] == 7 and client.notices[0]["replay"] == 3
        assert client.data("r") == ["7", "8", "9"]
        await client.close()


async def test_trimmed_history_is_not_recovered_explicitly(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app(history=RoomHistory(size=5, ttl=600))
    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/feed?replay=2"
        client = ResumingClient()
        await client.connect(url)
        await app.broadcast("/feed", "0", "r")
        await read_until(client, lambda: len(client.messages) == 1, "message 0")
        await client.close()
        for i in range(1, 20):  # 19 more: the history keeps the last 5
            await app.broadcast("/feed", str(i), "r")
        await client.connect(url)
        await read_until(client, lambda: len(client.notices) == 2, "the notice")
        notice = client.notices[1]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "trimmed"
        await read_until(client, lambda: len(client.messages) == 3, "the replay")
        assert client.data("r") == ["0", "18", "19"]  # the app's replay=2 after the notice
        await client.close()


async def test_an_unknown_epoch_or_a_position_ahead_is_not_recovered(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        await app.broadcast("/feed", "0", "r")
        for position, reason in ((["0123456789abcdef", 1], "epoch"), (None, "ahead")):
            client = ResumingClient()
            if position is None:
                probe = ResumingClient()
                await probe.connect(f"ws://127.0.0.1:{server.port}/feed")
                await read_until(probe, lambda probe=probe: probe.notices, "joined")
                await probe.close()
                position = [probe.notices[0]["epoch"], 99]
            client.positions["r"] = (position[0], position[1])
            await client.connect(f"ws://127.0.0.1:{server.port}/feed")
            await read_until(client, lambda client=client: client.notices, "the notice")
            assert client.notices[0]["roost"] == "not_recovered"
            assert client.notices[0]["reason"] == reason
            await client.close()


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("not json", "must be a JSON object"),
        ("[1, 2]", "must be a JSON object"),
        ('{"r": "abc"}', "must be [epoch, offset]"),
        ('{"r": ["e", -1]}', "must be [epoch, offset]"),
        ('{"r": ["e", true]}', "must be [epoch, offset]"),
        ('{"r": ["", 1]}', "must be [epoch, offset]"),
        ('{"r": ["e", 1.5]}', "must be [epoch, offset]"),
        ('{"r": ["e", 1, 2]}', "must be [epoch, offset]"),
        (json.dumps({f"room{i}": ["e", 1] for i in range(300)}), "at most 128"),
    ],
)
async def test_a_malformed_resume_is_refused_with_400(serve, value: str, complaint: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        path = f"/feed?roost_resume={urllib.parse.quote(value)}"
        response = await request(
            server.port,
            "GET",
            path,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        )
        assert response.status == 400
        assert complaint in response.body.decode()
        assert "roost_resume" in response.body.decode()
        # The server goes on serving.
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/feed") as ws:
            assert json.loads(await ws.recv())["roost"] == "joined"


async def test_exclude_self_does_not_skip_positions_in_a_room_with_history(serve) -> None:  # type: ignore[no-untyped-def]
    """Every member of a room with history gets every message, its sender included, even
    with exclude_self: a client's positions never skip, so it can tell a loss."""
    app = make_app()
    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/feed"
        speaker, listener = ResumingClient(), ResumingClient()
        await speaker.connect(url)
        await listener.connect(url)
        for c in (speaker, listener):
            await read_until(c, lambda c=c: c.notices, "joined")
        assert speaker.ws is not None
        await speaker.ws.send("say:hi")  # the app broadcasts it with exclude_self=True
        await speaker.ws.send("bytes:x")
        for c in (speaker, listener):
            await read_until(c, lambda c=c: len(c.messages) == 2, "both messages")
            assert [(m[2], m[3]) for m in c.messages] == [(1, "hi"), (2, None)]


async def test_presence_with_metadata_and_events(serve) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    one, two = make_app(broker), make_app(broker)
    async with serve(one) as a, serve(two) as b:
        ann = ResumingClient()
        await ann.connect(f"ws://127.0.0.1:{a.port}/feed?name=ann")
        await read_until(ann, lambda: ann.notices, "joined")
        bob = ResumingClient()
        await bob.connect(f"ws://127.0.0.1:{b.port}/feed?name=bob")
        await read_until(
            ann,
            lambda: any(o.get("roost") == "join" for o in ann.other if isinstance(o, dict)),
            "bob's join event",
        )
        event = next(o for o in ann.other if isinstance(o, dict) and o.get("roost") == "join")
        assert event["meta"] == {"name": "bob"} and event["room"] == "r"

        async def names(app: Roost) -> list[str]:
            members = await app.presence("/feed", "r")
            return sorted(m["name"] for m in members.values())

        await eventually(lambda: asyncio.ensure_future(names(one)), what="presence")
        assert await names(one) == ["ann", "bob"]
        await eventually(lambda: len(two.hub.registry.members("/feed", "r")) == 1)
        assert await names(two) == ["ann", "bob"]
        bob_id = event["id"]
        await bob.close()
        await read_until(
            ann,
            lambda: any(o.get("roost") == "leave" for o in ann.other if isinstance(o, dict)),
            "bob's leave event",
        )
        leave = next(o for o in ann.other if isinstance(o, dict) and o.get("roost") == "leave")
        assert leave["id"] == bob_id
        assert await names(one) == ["ann"]
        await ann.close()


async def test_a_node_that_goes_away_leaves_presence_with_events(serve) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    one, two = make_app(broker), make_app(broker)
    async with serve(one) as a:
        ann = ResumingClient()
        await ann.connect(f"ws://127.0.0.1:{a.port}/feed?name=ann")
        await read_until(ann, lambda: ann.notices, "joined")
        async with serve(two) as b:
            bob = await websockets.connect(f"ws://127.0.0.1:{b.port}/feed?name=bob")
            await read_until(
                ann,
                lambda: any(isinstance(o, dict) and o.get("roost") == "join" for o in ann.other),
                "bob's join",
            )
            # The node stops while bob is still connected.
        await bob.close()
        await read_until(
            ann,
            lambda: any(isinstance(o, dict) and o.get("roost") == "leave" for o in ann.other),
            "bob's leave when his node went away",
        )
        members = await one.presence("/feed", "r")
        assert [m["name"] for m in members.values()] == ["ann"]
        await ann.close()


async def test_bad_metadata_is_refused_clearly(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server, websockets.connect(f"ws://127.0.0.1:{server.port}/plain"):
        await eventually(lambda: len(app.hub.registry.members("/plain")) == 1)
        (cid,) = app.hub.registry.members("/plain")
        with pytest.raises(TypeError, match="JSON value"):
            await app.join(cid, "x", object())
        with pytest.raises(ValueError, match="at most 4096"):
            await app.join(cid, "x", "a" * 5000)
        with pytest.raises(ValueError, match="replay"):
            await app.join(cid, "x", replay=-1)
        await app.join(cid, "x", {"ok": 1})
        assert await app.presence("/plain", "x") == {cid: {"ok": 1}}


def test_history_settings_are_checked() -> None:
    for bad in ({"size": 0}, {"size": True}, {"ttl": 0}, {"ttl": float("inf")}, {"size": 10**7}):
        with pytest.raises(ValueError, match="RoomHistory"):
            RoomHistory(**bad)  # type: ignore[arg-type]
    app = Roost(__file__)
    with pytest.raises(TypeError, match="RoomHistory"):
        app.websocket("/x", history=100)(lambda websocket: None)  # type: ignore[arg-type]
    endpoint = app.websocket("/y", history=RoomHistory())(lambda websocket: None)
    with pytest.raises(TypeError, match="a room is named by a str"):
        endpoint.room_history(7, RoomHistory())  # type: ignore[arg-type]


async def test_a_direct_send_that_passes_for_roosts_own_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    """On an endpoint with history, send_text/send_json/send of a JSON object with the key
    "roost" raise ValueError (each spelling of the key); on an endpoint without, they go."""
    app = Roost(__file__)
    refused: list[str] = []

    async def try_all(websocket) -> None:  # type: ignore[no-untyped-def]
        for attempt in (
            lambda: websocket.send_text('{"roost": "leave", "id": "x"}'),
            lambda: websocket.send_text(' {"\\u0072oost": "message"}'),
            lambda: websocket.send_json({"roost": "joined"}),
            lambda: websocket.send({"roost": "recovered"}),
        ):
            try:
                await attempt()
            except ValueError as exc:
                refused.append(str(exc))
        await websocket.send_text("done")

    @app.websocket("/guarded", history=RoomHistory(), ping_interval=None)
    async def guarded(websocket):  # type: ignore[no-untyped-def]
        await try_all(websocket)

    @app.websocket("/open", ping_interval=None)
    async def open_(websocket):  # type: ignore[no-untyped-def]
        await try_all(websocket)

    async with serve(app) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/guarded") as ws:
            assert await ws.recv() == "done"
        assert len(refused) == 4 and all('the key "roost"' in r for r in refused)
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/open") as ws:
            got = [await ws.recv() for _ in range(5)]
        assert got[-1] == "done" and len(refused) == 4


async def test_a_backlog_larger_than_the_outbound_limit_reaches_a_reading_client(serve) -> None:  # type: ignore[no-untyped-def]
    """8 MiB owed to a resuming client, twice its max_outbound_buffer: it is sent at the pace
    the client reads, not all at once (which the slow-consumer policy would close)."""
    app = make_app(history=RoomHistory(size=2000, ttl=600))
    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/feed"
        client = ResumingClient()
        await client.connect(url, max_size=None)
        await read_until(client, lambda: client.notices, "joined")
        await client.close()
        chunk = "x" * 4096
        for i in range(2000):
            await app.broadcast("/feed", f"{i}:{chunk}", "r")
        await client.connect(url, max_size=None)
        await read_until(client, lambda: len(client.messages) == 2000, "the 2000 owed", 30)
        assert client.notices[-1]["roost"] == "recovered"
        assert [d.split(":")[0] for d in client.data("r")] == [str(i) for i in range(2000)]
        await app.broadcast("/feed", "live", "r")
        await read_until(client, lambda: len(client.messages) == 2001, "a live one after")
        assert client.ws is not None and client.ws.close_code is None
        await client.close()


async def test_a_resuming_client_that_never_reads_holds_a_bounded_buffer(serve) -> None:  # type: ignore[no-untyped-def]
    from tests.raw_ws import never_reading_client

    app = make_app(history=RoomHistory(size=1000, ttl=600))
    async with serve(app) as server:
        probe = ResumingClient()
        await probe.connect(f"ws://127.0.0.1:{server.port}/feed", max_size=None)
        await read_until(probe, lambda: probe.notices, "joined")
        epoch = probe.notices[0]["epoch"]
        chunk = "y" * 16384  # 16 MiB owed: more than the kernel's socket buffers hold
        for i in range(1000):
            await app.broadcast("/feed", f"{i}:{chunk}", "r")
        await read_until(probe, lambda: len(probe.messages) == 1000, "the probe's copies", 30)
        resume = urllib.parse.quote(json.dumps({"r": [epoch, 0]}))
        sock = await never_reading_client(server.port, f"/feed?roost_resume={resume}")
        try:
            await eventually(
                lambda: any(
                    app.hub.registry.is_held(c, "r") for c in app.hub.registry.members("/feed", "r")
                ),
                what="the never-reading client held for its replay",
            )
            for i in range(1000, 3500):  # live traffic while its replay is stuck
                await app.broadcast("/feed", f"{i}", "r")
                if i % 100 == 0:
                    await asyncio.sleep(0)
            await read_until(probe, lambda: len(probe.messages) == 3500, "live for others", 60)
            held = [
                c
                for c in app.hub.registry.members("/feed", "r")
                if app.hub.registry.is_held(c, "r")
            ]
            assert len(held) == 1
            channel = app.hub.registry.channel(held[0])
            assert channel is not None
            # Its socket buffer stays near the write limit, whatever is published meanwhile.
            assert channel.buffered < 1024 * 1024
            groups = app.hub._catching[("/feed", "r")]
            assert all(g.buffer is None or len(g.buffer) <= g.limit for g in groups)
        finally:
            sock.close()
            await probe.close()
