"""Rooms with history under ``--processes 2``, through the ``roost`` command: the relay
sequences and keeps them, so a client that drops, or whose worker is killed, resumes with
every message exactly once and in order, whichever worker it comes back to. While the relay is
down, publishing to the room fails with HistoryUnavailable; once a new relay is up, clients
are told the history was lost (``not_recovered``, reason ``epoch``) and get live messages
again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.parse

import pytest
import websockets

from tests.history_client import ResumingClient
from tests.http_client import Reply, read_response
from tests.integration.cluster import ClusterServer, children, eventually, exited
from tests.integration.test_history import (
    assert_exactly_once_in_order,
    drop_and_resume,
    read_until,
)
from tests.timing import seconds

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")

APP = "tests.integration.apps.history_app:app"


class Publisher:
    """A keep-alive HTTP connection to one worker of tests/integration/apps/history_app.py."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pid = 0

    @classmethod
    async def open(cls, port: int) -> Publisher:
        publisher = cls(*await asyncio.open_connection("127.0.0.1", port))
        reply = await publisher.call("GET", "/pid")
        publisher.pid = json.loads(reply.body)["pid"]
        return publisher

    async def call(self, method: str, path: str) -> Reply:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        self.writer.write(head.encode())
        return await read_response(self.reader, method, timeout=seconds(10))

    async def publish(self, text: str) -> Reply:
        return await self.call("POST", f"/publish?text={urllib.parse.quote(text)}")

    def close(self) -> None:
        self.writer.close()


async def publishers(port: int, workers: int = 2) -> dict[int, Publisher]:
    """One publisher per worker, by worker pid, once every worker serves (the kernel spreads
    connections over the workers that are accepting)."""
    by_pid: dict[int, Publisher] = {}

    async def one_on_each() -> bool:
        # Connections opened at the same time wake every worker's accept loop.
        for publisher in await asyncio.gather(*(Publisher.open(port) for _ in range(10))):
            if publisher.pid in by_pid or len(by_pid) == workers:
                publisher.close()
            else:
                by_pid[publisher.pid] = publisher
        return len(by_pid) == workers

    await eventually(one_on_each, 20, "a connection to each worker")
    return by_pid


def worker_pid(client: ResumingClient) -> int:
    """The pid of the worker the client's connection is on (its last ``{"pid": ...}``)."""
    return int(next(o["pid"] for o in reversed(client.other) if "pid" in o))


async def test_a_client_that_drops_gets_every_message_once_in_order() -> None:
    server = await ClusterServer("--processes", "2", cli=True, app=APP).ready()
    try:
        pubs = list((await publishers(server.port)).values())
        url = f"ws://127.0.0.1:{server.port}/feed"

        async def publish(i: int, text: str) -> None:  # from either worker, in turn
            reply = await pubs[i % 2].publish(text)
            assert reply.status == 200, reply.body

        client = await drop_and_resume(publish, [url], 600, drops=3)
        assert_exactly_once_in_order(client, "r", 600)
        kinds = [n["roost"] for n in client.notices]
        assert kinds == ["joined", "recovered", "recovered", "recovered"], kinds
        for publisher in pubs:
            publisher.close()
    finally:
        code = await server.stop()
    assert code == 0


async def test_history_survives_the_worker_a_client_was_on_being_killed() -> None:
    server = await ClusterServer("--processes", "2", cli=True, app=APP).ready()
    try:
        pubs = await publishers(server.port)
        url = f"ws://127.0.0.1:{server.port}/feed"
        client = ResumingClient()
        await client.connect(url)
        await read_until(client, lambda: client.notices, "the joined notice")
        victim = worker_pid(client)
        (publisher,) = (p for pid, p in pubs.items() if pid != victim)
        total = 300

        async def publish() -> None:
            for i in range(total):
                reply = await publisher.publish(str(i))
                assert reply.status == 200, reply.body

        task = asyncio.create_task(publish())
        try:
            await read_until(client, lambda: len(client.messages) >= total // 3, "a third")
            os.kill(victim, signal.SIGKILL)
            connections = 1

            async def read_all() -> None:
                nonlocal connections
                while len(client.messages) < total:
                    try:
                        await client.recv()
                    except websockets.ConnectionClosed:
                        await client.connect(url)  # to the other worker, or its replacement
                        connections += 1

            await asyncio.wait_for(read_all(), seconds(30))
            await task
        finally:
            task.cancel()
            await client.close()
        assert connections == 2
        assert_exactly_once_in_order(client, "r", total)
        kinds = [n["roost"] for n in client.notices]
        assert kinds == ["joined", "recovered"], kinds
        assert f"worker {victim} exited (status -9); starting a new one" in server.log()
        for p in pubs.values():
            p.close()
    finally:
        code = await server.stop()
    assert code == 0


async def test_with_the_relay_down_publishing_fails_then_clients_learn_of_a_new_epoch() -> None:
    server = await ClusterServer("--processes", "2", cli=True, app=APP).ready()
    stopped = False
    try:
        pubs = await publishers(server.port)
        url = f"ws://127.0.0.1:{server.port}/feed"
        resuming, live = ResumingClient(), ResumingClient()
        for client in (resuming, live):
            await client.connect(url)
            await read_until(client, lambda client=client: client.notices, "the joined notice")
        for i, publisher in enumerate([*pubs.values()] * 2):
            assert (await publisher.publish(f"before {i}")).status == 200
        for client in (resuming, live):
            await read_until(client, lambda client=client: len(client.messages) == 4, "4")
        await resuming.close()
        old_epoch = resuming.positions["r"][0]

        (relay,) = children(server.proc.pid) - set(pubs)
        os.kill(server.proc.pid, signal.SIGSTOP)  # no new relay until it is continued
        stopped = True
        os.kill(relay, signal.SIGKILL)
        await eventually(lambda: exited(relay), what="the relay's exit")
        for publisher in pubs.values():  # on each worker
            reply = await publisher.publish("lost")
            assert reply.status == 503, reply.body
            assert reply.body.startswith(b"history unavailable: "), reply.body
        os.kill(server.proc.pid, signal.SIGCONT)
        stopped = False

        async def published_on(publisher: Publisher) -> bool:
            return (await publisher.publish("probe")).status == 200

        for publisher in pubs.values():  # each worker is linked to the new relay
            await eventually(lambda publisher=publisher: published_on(publisher), 20)

        await resuming.connect(url)
        await read_until(resuming, lambda: len(resuming.notices) == 2, "the notice")
        notice = resuming.notices[1]
        assert (notice["roost"], notice["reason"]) == ("not_recovered", "epoch")
        assert notice["epoch"] != old_epoch
        assert (await next(iter(pubs.values())).publish("after")).status == 200
        await read_until(resuming, lambda: resuming.data("r")[-1:] == ["after"], "after")
        assert resuming.messages[-1][1] == notice["epoch"]
        assert resuming.data("r") == [f"before {i}" for i in range(4)] + ["after"]

        # The client that stayed connected is told too, before the first message of the
        # new epoch; it never gets the message that could not be published.
        await read_until(live, lambda: live.data("r")[-1:] == ["after"], "after, live")
        assert [n["roost"] for n in live.notices] == ["joined", "not_recovered"]
        assert live.notices[1]["reason"] == "epoch"
        assert "lost" not in live.data("r")
        await live.close()
        for p in pubs.values():
            p.close()
    finally:
        if stopped:
            os.kill(server.proc.pid, signal.SIGCONT)
        code = await server.stop()
    assert code == 0


async def test_a_killed_workers_members_leave_presence_with_events() -> None:
    server = await ClusterServer("--processes", "2", cli=True, app=APP).ready()
    try:
        pubs = await publishers(server.port)
        url = f"ws://127.0.0.1:{server.port}/feed"
        by_pid: dict[int, ResumingClient] = {}
        extra: list[ResumingClient] = []

        async def one(name: str) -> ResumingClient:
            client = ResumingClient()
            await client.connect(f"{url}?name={name}")
            await read_until(client, lambda: client.notices, "the joined notice")
            return client

        async def one_on_each() -> bool:
            for client in await asyncio.gather(*(one(f"c{len(by_pid)}") for _ in range(6))):
                pid = worker_pid(client)
                if pid in by_pid:
                    extra.append(client)
                else:
                    by_pid[pid] = client
            return len(by_pid) == 2

        await eventually(one_on_each, 20, "a member on each worker")
        (ann_pid, ann), (victim, bob) = by_pid.items()
        bob_id = next(o["id"] for o in bob.other if isinstance(o, dict) and "id" in o)
        ann_pub = pubs[ann_pid]

        async def names() -> dict[str, object]:
            reply = await ann_pub.call("GET", "/presence")
            return json.loads(reply.body)["members"]  # type: ignore[no-any-return]

        async def bob_present() -> bool:
            return bob_id in await names()

        await eventually(bob_present, what="bob in presence on ann's worker")
        meta = (await names())[bob_id]
        assert isinstance(meta, dict) and str(meta["name"]).startswith("c")
        os.kill(victim, signal.SIGKILL)

        def left(client: ResumingClient) -> bool:
            return any(
                isinstance(o, dict) and o.get("roost") == "leave" and o.get("id") == bob_id
                for o in client.other
            )

        await read_until(ann, lambda: left(ann), "bob's leave event after his worker died")
        assert bob_id not in await names()
        for client in [ann, *extra]:
            await client.close()
        for p in pubs.values():
            p.close()
    finally:
        code = await server.stop()
    assert code == 0
