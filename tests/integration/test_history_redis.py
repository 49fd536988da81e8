"""Rooms with history across two roost servers sharing a real redis-server: every message
exactly once and in order for a client that moves between them, one order for publishers on
both, a trimmed history, a Redis restart (a new epoch), Redis down (broadcasts raise), a gap
after a pub/sub reconnect filled from the history, and presence with metadata and events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roost import HistoryUnavailable, RoomHistory, Roost
from roost.hub.broker import Deliver, Sequenced
from roost.hub.history import HistoryRead, Position
from roost.hub.redis import RedisBroker
from tests.history_client import ResumingClient
from tests.integration.test_history import (
    assert_exactly_once_in_order,
    drop_and_resume,
    make_app,
    read_until,
)
from tests.redis_server import RedisServer, needs_redis
from tests.timing import eventually

pytestmark = needs_redis


class CountingBroker(RedisBroker):
    """Records the offsets that came through pub/sub, and counts the history reads."""

    reads = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offsets: list[int] = []

    async def start(
        self, node_id: str, deliver: Deliver, sequenced: Sequenced | None = None
    ) -> None:
        assert sequenced is not None

        def recorded(epoch: str, offset: int, body: bytes) -> None:
            self.offsets.append(offset)
            sequenced(epoch, offset, body)

        await super().start(node_id, deliver, recorded)

    def missed(self, first: int, last: int) -> bool:
        """Whether pub/sub lost any of the offsets first..last on their way here."""
        return not set(range(first, last + 1)) <= set(self.offsets)

    async def read_history(
        self, key: str, history: RoomHistory, since: Position | None, replay: int, limit: int = 0
    ) -> HistoryRead[bytes]:
        self.reads += 1
        return await super().read_history(key, history, since, replay, limit)


def app_on(redis: RedisServer, history: RoomHistory | None = None) -> Roost:
    return make_app(CountingBroker(redis.url, presence_ttl=60), history)  # type: ignore[arg-type]


def broker_of(app: Roost) -> CountingBroker:
    broker = app.hub.broker
    assert isinstance(broker, CountingBroker)
    return broker


async def test_a_client_moving_between_two_servers_gets_every_message_once_in_order(
    serve: Any, redis: RedisServer
) -> None:
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two) as b:
        urls = [f"ws://127.0.0.1:{a.port}/feed", f"ws://127.0.0.1:{b.port}/feed"]

        async def publish(i: int, text: str) -> None:
            await (one if i % 2 else two).broadcast("/feed", text, "r")

        client = await drop_and_resume(publish, urls, 600, drops=4)
    assert_exactly_once_in_order(client, "r", 600)
    kinds = [n["roost"] for n in client.notices]
    assert kinds == ["joined", "recovered", "recovered", "recovered", "recovered"], kinds


async def test_publishers_on_two_servers_at_once_never_share_an_offset(
    serve: Any, redis: RedisServer
) -> None:
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two) as b:
        clients = [ResumingClient(), ResumingClient()]
        for client, port in zip(clients, (a.port, b.port), strict=True):
            await client.connect(f"ws://127.0.0.1:{port}/feed")
            await read_until(client, lambda client=client: client.notices, "joined")

        async def publish(app: Roost, name: str) -> None:
            for i in range(200):
                await app.broadcast("/feed", f"{name} {i}", "r")

        await asyncio.gather(publish(one, "one"), publish(two, "two"), publish(one, "three"))
        for client in clients:
            await read_until(client, lambda client=client: len(client.messages) >= 600, "600")
            offsets = [o for _, _, o, _ in client.messages]
            assert offsets == list(range(1, 601))
            assert len({e for _, e, _, _ in client.messages}) == 1
            for name in ("one", "two", "three"):
                mine = [d for d in client.data("r") if d.split()[0] == name]
                assert mine == [f"{name} {i}" for i in range(200)]
        assert clients[0].messages == clients[1].messages
        for client in clients:
            await client.close()


async def test_a_trimmed_history_is_not_recovered_explicitly(
    serve: Any, redis: RedisServer
) -> None:
    one, two = app_on(redis, RoomHistory(size=5, ttl=600)), app_on(redis, RoomHistory(5, 600))
    async with serve(one) as a, serve(two) as b:
        client = ResumingClient()
        await client.connect(f"ws://127.0.0.1:{a.port}/feed?replay=2")
        await read_until(client, lambda: client.notices, "joined")
        await two.broadcast("/feed", "0", "r")
        await read_until(client, lambda: len(client.messages) == 1, "message 0")
        await client.close()
        for i in range(1, 20):  # 19 more: Redis keeps the last 5
            await (one if i % 2 else two).broadcast("/feed", str(i), "r")
        await client.connect(f"ws://127.0.0.1:{b.port}/feed?replay=2")
        await read_until(client, lambda: len(client.messages) == 3, "the replay")
        notice = client.notices[1]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "trimmed"
        assert notice["offset"] == 18 and notice["replay"] == 2
        assert client.data("r") == ["0", "18", "19"]
        await client.close()


async def broadcast_works(app: Roost, text: str) -> bool:
    try:
        await app.broadcast("/feed", text, "r")
    except HistoryUnavailable:
        return False
    return True


async def test_redis_restarted_empty_gives_a_new_epoch(serve: Any, redis: RedisServer) -> None:
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two) as b:
        leaving, staying = ResumingClient(), ResumingClient()
        await leaving.connect(f"ws://127.0.0.1:{a.port}/feed")
        await staying.connect(f"ws://127.0.0.1:{b.port}/feed")
        for client in (leaving, staying):
            await read_until(client, lambda client=client: client.notices, "joined")
        for i in range(3):
            await one.broadcast("/feed", str(i), "r")
        for client in (leaving, staying):
            await read_until(client, lambda client=client: len(client.messages) == 3, "3")
        await leaving.close()
        old_epoch = leaving.positions["r"][0]

        redis.kill()  # no persistence: it comes back empty, on the same port
        redis.start()
        await redis.ready()
        # The client that stayed is told its history is gone once its server is subscribed
        # again (a message sequenced before then is not replayed: it was not recovered).
        await read_until(staying, lambda: len(staying.notices) == 2, "the notice")
        notice = staying.notices[1]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "epoch"
        assert notice["epoch"] != old_epoch
        await eventually(lambda: broadcast_works(two, "first"), 20, "broadcasting again")
        await one.broadcast("/feed", "after", "r")
        await read_until(staying, lambda: staying.data("r")[-1:] == ["after"], "after")
        assert len(staying.notices) == 2  # told once
        new = [o for _, e, o, _ in staying.messages if e == notice["epoch"]]
        assert new == list(range(notice["offset"] + 1, notice["offset"] + 1 + len(new)))
        # The one that comes back with its old position is told too, on either server.
        await leaving.connect(f"ws://127.0.0.1:{a.port}/feed")
        await read_until(leaving, lambda: len(leaving.notices) == 2, "the notice")
        notice = leaving.notices[1]
        assert notice["roost"] == "not_recovered" and notice["reason"] == "epoch"
        assert notice["epoch"] != old_epoch
        await leaving.close()
        await staying.close()


async def test_redis_down_fails_history_broadcasts_until_it_is_back(
    serve: Any, redis: RedisServer
) -> None:
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two):
        client = ResumingClient()
        await client.connect(f"ws://127.0.0.1:{a.port}/feed")
        await read_until(client, lambda: client.notices, "joined")
        await two.broadcast("/feed", "before", "r")
        await read_until(client, lambda: client.data("r") == ["before"], "before")

        redis.kill()
        for app in (one, two, one):
            with pytest.raises(HistoryUnavailable, match=r"Redis at redis://127\.0\.0\.1"):
                await app.broadcast("/feed", "lost", "r")
        assert (one.hub.unsequenced, two.hub.unsequenced) == (2, 1)

        redis.start()
        await redis.ready()
        # Redis came back empty: once its server is subscribed again, the client is told.
        await read_until(client, lambda: len(client.notices) == 2, "the notice")
        assert client.notices[1]["reason"] == "epoch"
        await eventually(lambda: broadcast_works(two, "back"), 20, "broadcasting again")
        await read_until(client, lambda: client.data("r")[-1:] == ["back"], "back")
        assert client.data("r") == ["before", "back"]
        await client.close()


async def test_gaps_after_a_pubsub_reconnect_are_filled_from_the_history(
    serve: Any, redis: RedisServer
) -> None:
    """Redis drops the subscriptions while another server publishes: what was published
    until this server subscribed again never reaches it on pub/sub, and its hub replays it
    from the history, so the client sees no gap; also when no message follows."""
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two):
        client = ResumingClient()
        await client.connect(f"ws://127.0.0.1:{a.port}/feed")
        await read_until(client, lambda: client.notices, "joined")
        sent = 0

        async def publish(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                await two.broadcast("/feed", str(sent), "r")
                sent += 1

        await publish(10)
        await read_until(client, lambda: len(client.messages) == 10, "10 messages")

        async def lost_while_publishing() -> bool:
            first = sent + 1
            task = asyncio.ensure_future(publish(100))
            await asyncio.sleep(0)
            await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await task
            await read_until(client, lambda: len(client.messages) == sent, f"{sent} messages")
            return broker_of(one).missed(first, sent)

        await eventually(lost_while_publishing, 20, "messages lost on pub/sub")

        async def last_one_lost() -> bool:
            await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await publish(1)  # and nothing after it
            await read_until(client, lambda: len(client.messages) == sent, f"{sent} messages")
            return broker_of(one).missed(sent, sent)

        await eventually(last_one_lost, 20, "the last message lost on pub/sub")
        assert_exactly_once_in_order(client, "r", sent)
        assert [n["roost"] for n in client.notices] == ["joined"]  # a repair is not a notice
        await client.close()


async def test_presence_with_metadata_and_events_across_two_servers(
    serve: Any, redis: RedisServer
) -> None:
    one, two = app_on(redis), app_on(redis)
    async with serve(one) as a, serve(two) as b:
        ann = ResumingClient()
        await ann.connect(f"ws://127.0.0.1:{a.port}/feed?name=ann")
        await read_until(ann, lambda: ann.notices, "joined")
        bob = ResumingClient()
        await bob.connect(f"ws://127.0.0.1:{b.port}/feed?name=bob")

        def events(kind: str) -> list[dict[str, Any]]:
            return [o for o in ann.other if isinstance(o, dict) and o.get("roost") == kind]

        await read_until(ann, lambda: events("join"), "bob's join event")
        (joined,) = events("join")
        assert joined["room"] == "r" and joined["meta"] == {"name": "bob"}

        async def members(app: Roost) -> dict[str, Any]:
            return await app.presence("/feed", "r")

        async def both_listed() -> bool:
            return [len(await members(app)) for app in (one, two)] == [2, 2]

        await eventually(both_listed, what="both members on both servers")
        for app in (one, two):
            found = await members(app)
            assert sorted(m["name"] for m in found.values()) == ["ann", "bob"]
            assert found[joined["id"]] == {"name": "bob"}
        await bob.close()
        await read_until(ann, lambda: events("leave"), "bob's leave event")
        assert events("leave")[0] == {"roost": "leave", "room": "r", "id": joined["id"]}

        async def bob_gone() -> bool:
            return [list(await members(app)) for app in (one, two)] == [[ann_id], [ann_id]]

        ann_id = next(cid for cid, m in (await members(one)).items() if m == {"name": "ann"})
        await eventually(bob_gone, what="bob gone from presence")
        await ann.close()
