"""Rooms, send_to, disconnect and presence: in one process, and across nodes sharing a
MemoryBroker (what roost.testing users do to test cluster behaviour without Redis)."""

from __future__ import annotations

import asyncio
import json

import websockets

from roost import Roost
from roost.hub.broker import MemoryBroker
from tests.http_client import request
from tests.timing import seconds


def make_app(broker: MemoryBroker | None = None) -> Roost:
    app = Roost(__file__, broker=broker)

    @app.websocket("/chat", ping_interval=None)
    async def chat(websocket):  # type: ignore[no-untyped-def]
        await websocket.join(websocket.query_params.get("room", "lobby"))
        await websocket.send_json({"id": websocket.id, "rooms": sorted(websocket.rooms)})
        while True:
            text = await websocket.receive_text()
            if text == "leave":
                await websocket.leave(websocket.query_params.get("room", "lobby"))
                await websocket.send_json({"rooms": sorted(websocket.rooms)})
                continue
            room = websocket.query_params.get("room", "lobby")
            await websocket.broadcast(text, room=room, exclude_self=True)

    @app.post("/notify/:conn_id")
    async def notify(request, conn_id: str):  # type: ignore[no-untyped-def]
        return {"sent": await app.send_to(conn_id, request.body.decode())}

    @app.post("/kick/:conn_id")
    async def kick(conn_id: str):  # type: ignore[no-untyped-def]
        return {"kicked": await app.disconnect(conn_id, 4001, "kicked")}

    return app


async def join(port: int, room: str) -> tuple[websockets.ClientConnection, str]:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat?room={room}")
    hello = json.loads(await ws.recv())
    assert hello["rooms"] == [room]
    return ws, hello["id"]


async def nothing_arrives(ws: websockets.ClientConnection) -> None:
    try:
        message = await asyncio.wait_for(ws.recv(), seconds(0.2))
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {message!r}")


async def test_rooms_send_to_and_disconnect_in_one_process(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with serve(app) as server:
        a, a_id = await join(server.port, "red")
        b, b_id = await join(server.port, "red")
        c, c_id = await join(server.port, "blue")
        await a.send("hello red")
        assert await b.recv() == "hello red"
        await nothing_arrives(a)  # exclude_self
        await nothing_arrives(c)  # another room
        assert sorted(await app.connections("/chat", "red")) == sorted([a_id, b_id])
        assert len(await app.connections()) == 3
        reply = await request(server.port, "POST", f"/notify/{c_id}", body=b"from HTTP")
        assert reply.json() == {"sent": True}
        assert await c.recv() == "from HTTP"
        missing = await request(server.port, "POST", "/notify/nobody", body=b"x")
        assert missing.json() == {"sent": False}
        await b.send("leave")
        assert json.loads(await b.recv()) == {"rooms": []}
        await a.send("anyone?")
        await nothing_arrives(b)
        assert (await request(server.port, "POST", f"/kick/{c_id}")).json() == {"kicked": True}
        await c.wait_closed()
        assert (c.close_code, c.close_reason) == (4001, "kicked")
        await a.close()
        await b.close()
        for _ in range(100):
            if not await app.connections():
                break
            await asyncio.sleep(0.01)
        assert await app.connections() == []


async def test_two_nodes_share_a_memory_broker(serve) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    app1, app2 = make_app(broker), make_app(broker)
    async with serve(app1) as s1, serve(app2) as s2:
        a, a_id = await join(s1.port, "red")
        b, b_id = await join(s2.port, "red")
        c, c_id = await join(s2.port, "blue")
        for _ in range(100):  # presence replicates through the broker
            if len(await app1.connections()) == 3:
                break
            await asyncio.sleep(0.01)
        assert sorted(await app1.connections("/chat", "red")) == sorted([a_id, b_id])
        assert sorted(await app2.connections()) == sorted([a_id, b_id, c_id])
        await a.send("across nodes")
        assert await b.recv() == "across nodes"
        await nothing_arrives(c)
        reply = await request(s1.port, "POST", f"/notify/{c_id}", body=b"node 1 to node 2")
        assert reply.json() == {"sent": True}
        assert await c.recv() == "node 1 to node 2"
        assert (await request(s1.port, "POST", f"/kick/{b_id}")).json() == {"kicked": True}
        await b.wait_closed()
        assert b.close_code == 4001
        await a.close()
        await c.close()
