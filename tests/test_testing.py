"""The TestClient itself: HTTP, WebSocket sessions, timeouts and rejected handshakes."""

from __future__ import annotations

import time

import msgspec
import pytest

from roost import Request, Response, Roost, WebSocket, WebSocketDisconnect
from roost.testing import TestClient, WebSocketRejected
from roost.typed import Error, Reply
from tests.timing import seconds


def make_app() -> Roost:
    app = Roost(__file__)

    @app.get("/items/:item_id")
    def item(request: Request, item_id: int, q: str = "") -> dict[str, object]:
        return {"id": item_id, "q": q, "ua": request.headers.get("x-test")}

    @app.post("/echo")
    def echo_body(request: Request) -> dict[str, object]:
        return {"got": request.json()}

    @app.delete("/items/:item_id")
    def remove(item_id: int) -> Response:
        return Response(204, None, b"")

    @app.websocket("/ws", subprotocols=["v1"])
    async def ws(websocket):  # type: ignore[no-untyped-def]
        while True:
            message = await websocket.receive()
            if message == "quiet":
                continue
            if message == "bye":
                await websocket.close(4001, "asked to leave")
                return
            await websocket.send(message)

    @ws.on_connect
    def hello(websocket):  # type: ignore[no-untyped-def]
        return f"hello {websocket.query_params.get('name', 'anon')}"

    @app.websocket("/private")
    async def private(websocket, token: str):  # type: ignore[no-untyped-def]
        await websocket.send_text(token)

    return app


def test_http_requests() -> None:
    with TestClient(make_app()) as client:
        reply = client.get("/items/5", params={"q": "x y"}, headers={"X-Test": "1"})
        assert reply.status_code == 200
        assert reply.json() == {"id": 5, "q": "x y", "ua": "1"}
        assert reply.headers.get("Content-Type") == "application/json"
        assert client.post("/echo", json={"a": [1]}).json() == {"got": {"a": [1]}}
        assert client.delete("/items/5").status_code == 204
        assert client.get("/nope").status_code == 404
        assert client.put("/echo").status_code == 405
        assert client.get("/items/notanumber").status_code == 400


def test_websocket_session() -> None:
    with (
        TestClient(make_app()) as client,
        client.websocket_connect("/ws?name=ann", subprotocols=["v1"]) as ws,
    ):
        assert ws.subprotocol == "v1"
        assert ws.receive_text() == "hello ann"
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"
        ws.send_json({"k": 1})
        assert ws.receive_json() == {"k": 1}
        ws.send_text("bye")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive()
        assert (closed.value.code, closed.value.reason) == (4001, "asked to leave")


def test_receive_times_out_instead_of_hanging() -> None:
    with (
        TestClient(make_app(), timeout=seconds(0.2)) as client,
        client.websocket_connect("/ws") as ws,
    ):
        ws.receive_text()
        ws.send_text("quiet")
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no WebSocket message"):
            ws.receive()
        assert time.monotonic() - started < 5


def test_rejected_handshake_carries_the_status() -> None:
    with TestClient(make_app()) as client:
        with pytest.raises(WebSocketRejected) as missing:
            client.websocket_connect("/private")
        assert missing.value.status_code == 400
        assert b"token" in missing.value.body
        with pytest.raises(WebSocketRejected) as unknown:
            client.websocket_connect("/nowhere")
        assert unknown.value.status_code == 404
        with client.websocket_connect("/private?token=t0k") as ws:
            assert ws.receive_text() == "t0k"


def test_two_nodes_over_a_memory_broker() -> None:
    from roost.hub.broker import MemoryBroker

    broker = MemoryBroker()

    def node() -> Roost:
        app = Roost(__file__, broker=broker)

        @app.websocket("/chat")
        async def chat(websocket):  # type: ignore[no-untyped-def]
            await websocket.send_json({"id": websocket.id})
            while True:
                await websocket.broadcast(await websocket.receive_text())

        @app.get("/who")
        async def who():  # type: ignore[no-untyped-def]
            return {"ids": sorted(await app.connections("/chat"))}

        return app

    with (
        TestClient(node()) as one,
        TestClient(node()) as two,
        one.websocket_connect("/chat") as a,
        two.websocket_connect("/chat") as b,
    ):
        ids = sorted([a.receive_json()["id"], b.receive_json()["id"]])
        for _ in range(100):
            if one.get("/who").json()["ids"] == ids:
                break
            time.sleep(0.01)
        assert one.get("/who").json()["ids"] == ids
        a.send_text("hello other node")
        assert b.receive_text() == "hello other node"
        assert a.receive_text() == "hello other node"


class Add(msgspec.Struct, tag="add", tag_field="type"):
    a: int
    b: int


class Sum(msgspec.Struct, tag="sum", tag_field="type"):
    total: int


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_websocket_sessions_send_and_receive_typed_values(encoding: str) -> None:
    app = Roost(__file__)

    @app.websocket("/calc", encoding=encoding)
    async def calc(websocket: WebSocket) -> None:
        pass

    @calc.on(Add)
    async def add(websocket: WebSocket, msg: Add) -> int:
        await websocket.send(Sum(msg.a + msg.b))
        return msg.a + msg.b

    with TestClient(app, timeout=seconds(5)) as client, client.websocket_connect("/calc") as ws:
        assert ws.codec.name == encoding
        ws.send_message(Add(1, 2))
        assert ws.receive_message(Sum) == Sum(3)
        ws.send_message(Add(2, 2), ref="r1")
        assert ws.receive_message(Sum | Reply | Error) == Sum(4)
        assert ws.receive_message(Sum | Reply | Error) == Reply("r1", 4)
        ws.send_message({"type": "add", "a": "x"}, ref=2)
        assert ws.receive_message(Error) == Error(
            "validation_error", "Expected `int`, got `str`", "$.a", 2
        )
        with pytest.raises(TypeError):
            ws.send_message([1], ref=3)
