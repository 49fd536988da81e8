"""Typed messages over real sockets: every kind of bad input is answered with an ``error``
message and the socket stays open; the invalid-message policy closes with its code; acks
answer success and failure with the request's ``ref``; typed values go through broadcast,
send_to and rooms, in JSON and in MessagePack; an endpoint without typed handlers is
unchanged."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec
import pytest
import websockets

from roost import MessageError, Roost, WebSocket
from tests.timing import seconds


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    n: int


class Say(msgspec.Struct, tag="say", tag_field="type"):
    text: Annotated[str, msgspec.Meta(max_length=5)]


class Fail(msgspec.Struct, tag="fail", tag_field="type"):
    how: str


class Pong(msgspec.Struct, tag="pong", tag_field="type"):
    n: int


def make_app(**options: Any) -> Roost:
    app = Roost(__file__)

    @app.websocket("/typed", **options)
    async def typed(websocket: WebSocket) -> None:
        pass

    @typed.on(Ping)
    async def ping(websocket: WebSocket, msg: Ping) -> int:
        await websocket.send(Pong(msg.n))
        return msg.n + 1

    @typed.on(Say)
    def say(websocket: WebSocket, msg: Say) -> None:  # sync: runs in the pool
        return None

    @typed.on(Fail)
    async def fail(websocket: WebSocket, msg: Fail) -> None:
        if msg.how == "refused":
            raise MessageError("not allowed", code="forbidden")
        raise RuntimeError("boom")

    return app


async def recv_json(ws: websockets.ClientConnection) -> Any:
    message = await asyncio.wait_for(ws.recv(), seconds(5))
    assert isinstance(message, str)
    return json.loads(message)


async def still_open(ws: websockets.ClientConnection) -> None:
    """A valid message is still handled: the connection survived."""
    await ws.send('{"type": "ping", "n": 41}')
    assert await recv_json(ws) == {"type": "pong", "n": 41}


BAD_INPUT = [
    ("not json", "decode_error", None, "JSON is malformed"),
    ('{"type": "nope"}', "validation_error", "$.type", "Invalid value 'nope'"),
    ('{"n": 1}', "validation_error", "$", "Object missing required field `type`"),
    ('{"type": "ping", "n": "1"}', "validation_error", "$.n", "Expected `int`, got `str`"),
    ('{"type": "ping"}', "validation_error", "$", "Object missing required field `n`"),
    ('{"type": "say", "text": "toolong"}', "validation_error", "$.text", "length <= 5"),
    ("[1, 2]", "validation_error", "$", "Expected `object`, got `array`"),
    ('{"type": "ping", "n": 1, "ref": {}}', "validation_error", "$.ref", "Expected"),
    ('{"type": "ping", "n": 1, "ref": "' + "x" * 129 + '"}', "validation_error", "$.ref", ""),
]


@pytest.mark.parametrize(("raw", "code", "path", "says"), BAD_INPUT)
async def test_bad_input_is_answered_and_the_socket_stays_open(
    serve: Any, raw: str, code: str, path: str | None, says: str
) -> None:
    async with (
        serve(make_app()) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/typed") as ws,
    ):
        for _ in range(3):
            await ws.send(raw)
            error = await recv_json(ws)
            assert error["type"] == "error"
            assert error["code"] == code
            assert error["path"] == path
            assert says in error["message"]
            assert error["ref"] is None
            await still_open(ws)


async def test_an_invalid_message_with_a_ref_is_answered_with_that_ref(serve: Any) -> None:
    async with (
        serve(make_app()) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/typed") as ws,
    ):
        await ws.send('{"type": "ping", "n": "x", "ref": 7}')
        assert await recv_json(ws) == {
            "type": "error",
            "code": "validation_error",
            "message": "Expected `int`, got `str`",
            "path": "$.n",
            "ref": 7,
        }
        # A key spelled with an escape is still the ref.
        await ws.send('{"type": "ping", "n": "x", "\\u0072ef": "r"}')
        assert (await recv_json(ws))["ref"] == "r"


@pytest.mark.parametrize("close_code", [1008, 1007])
async def test_the_policy_closes_after_n_invalid_messages(serve: Any, close_code: int) -> None:
    app = make_app(max_invalid_messages=3, invalid_close_code=close_code)
    async with (
        serve(app) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/typed") as ws,
    ):
        for _ in range(2):
            await ws.send("{")
            assert (await recv_json(ws))["code"] == "decode_error"
        await still_open(ws)  # valid messages do not reset or add to the count
        await ws.send('{"type": "ping"}')
        assert (await recv_json(ws))["code"] == "validation_error"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), seconds(5))
        assert ws.close_code == close_code
        assert ws.close_reason == "too many invalid messages"


async def test_without_a_policy_invalid_messages_never_close(serve: Any) -> None:
    async with (
        serve(make_app()) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/typed") as ws,
    ):
        for _ in range(50):
            await ws.send("{")
        for _ in range(50):
            assert (await recv_json(ws))["code"] == "decode_error"
        await still_open(ws)


async def test_acks_answer_with_the_return_value_or_the_error(serve: Any) -> None:
    async with (
        serve(make_app()) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/typed") as ws,
    ):
        await ws.send('{"type": "ping", "n": 1, "ref": 1}')
        assert await recv_json(ws) == {"type": "pong", "n": 1}
        assert await recv_json(ws) == {"type": "reply", "ref": 1, "data": 2}
        await ws.send('{"type": "say", "text": "hi", "ref": "a-1"}')
        assert await recv_json(ws) == {"type": "reply", "ref": "a-1", "data": None}
        await ws.send('{"type": "fail", "how": "refused", "ref": 2}')
        assert await recv_json(ws) == {
            "type": "error",
            "code": "forbidden",
            "message": "not allowed",
            "path": None,
            "ref": 2,
        }
        await ws.send('{"type": "fail", "how": "crash", "ref": 3}')
        assert await recv_json(ws) == {
            "type": "error",
            "code": "internal_error",
            "message": "internal error",
            "path": None,
            "ref": 3,
        }
        # Without a ref, the return value is not sent, and errors are still answered.
        await ws.send('{"type": "say", "text": "hi"}')
        await ws.send('{"type": "fail", "how": "crash"}')
        assert (await recv_json(ws))["ref"] is None
        await still_open(ws)


class Chat(msgspec.Struct, tag="chat", tag_field="type"):
    room: str
    text: str


class Direct(msgspec.Struct, tag="direct", tag_field="type"):
    to: str
    text: str


class Whoami(msgspec.Struct, tag="whoami", tag_field="type"):
    pass


class Said(msgspec.Struct, tag="said", tag_field="type"):
    text: str


def rooms_app(encoding: str = "json") -> Roost:
    app = Roost(__file__)

    @app.websocket("/rooms", encoding=encoding)
    async def rooms(websocket: WebSocket) -> None:
        await websocket.join("lobby")

    @rooms.on(Chat)
    async def chat(websocket: WebSocket, msg: Chat) -> int:
        return await websocket.broadcast(Said(msg.text), room=msg.room, exclude_self=True)

    @rooms.on(Direct)
    async def direct(websocket: WebSocket, msg: Direct) -> bool:
        return await websocket.send_to(msg.to, Said(msg.text))

    @rooms.on(Whoami)
    async def whoami(websocket: WebSocket, msg: Whoami) -> str:
        return websocket.id

    return app


async def test_typed_values_through_rooms_broadcast_and_send_to(serve: Any) -> None:
    app = rooms_app()
    url = "/rooms"
    async with serve(app) as server:
        base = f"ws://127.0.0.1:{server.port}"
        async with websockets.connect(base + url) as a, websockets.connect(base + url) as b:
            await b.send('{"type": "whoami", "ref": 0}')
            b_id = (await recv_json(b))["data"]
            await a.send('{"type": "chat", "room": "lobby", "text": "hi", "ref": 1}')
            assert await recv_json(b) == {"type": "said", "text": "hi"}
            assert await recv_json(a) == {"type": "reply", "ref": 1, "data": 1}
            await a.send(json.dumps({"type": "direct", "to": b_id, "text": "psst", "ref": 2}))
            assert await recv_json(b) == {"type": "said", "text": "psst"}
            assert await recv_json(a) == {"type": "reply", "ref": 2, "data": True}
            # From outside a handler: the app encodes as the endpoint does.
            assert await app.broadcast(url, Said("all"), room="lobby") == 2
            assert await recv_json(a) == {"type": "said", "text": "all"}
            assert await recv_json(b) == {"type": "said", "text": "all"}
            assert await app.send_to(b_id, Said("one"))
            assert await recv_json(b) == {"type": "said", "text": "one"}


async def test_msgpack_endpoints_speak_binary(serve: Any) -> None:
    app = rooms_app("msgpack")
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    async with serve(app) as server:
        base = f"ws://127.0.0.1:{server.port}/rooms"
        async with websockets.connect(base) as a, websockets.connect(base) as b:
            await a.send(encode({"type": "chat", "room": "lobby", "text": "hi", "ref": 5}))
            assert decode(await asyncio.wait_for(b.recv(), seconds(5))) == {
                "type": "said",
                "text": "hi",
            }
            assert decode(await asyncio.wait_for(a.recv(), seconds(5))) == {
                "type": "reply",
                "ref": 5,
                "data": 1,
            }
            assert await app.broadcast(app.routes.websockets.match("GET", "/rooms")[0], Said("x"))
            assert decode(await asyncio.wait_for(b.recv(), seconds(5))) == {
                "type": "said",
                "text": "x",
            }
            await a.recv()
            for bad, code in [
                ('{"type": "whoami"}', "decode_error"),  # a text message
                (b"\xc1", "decode_error"),
                (encode({"type": "chat"}), "validation_error"),
            ]:
                await a.send(bad)
                error = decode(await asyncio.wait_for(a.recv(), seconds(5)))
                assert error["type"] == "error"
                assert error["code"] == code
            await a.send(encode({"type": "whoami", "ref": "w"}))
            assert decode(await asyncio.wait_for(a.recv(), seconds(5)))["ref"] == "w"


async def test_an_endpoint_without_typed_handlers_is_unchanged(serve: Any) -> None:
    app = Roost(__file__)

    @app.websocket("/plain")
    async def plain(websocket: WebSocket) -> None:
        text = await websocket.receive_text()
        await websocket.send_text(f"got {text}")
        await websocket.send({"also": "typed"})

    async with (
        serve(app) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/plain") as ws,
    ):
        await ws.send("not json at all")
        assert await asyncio.wait_for(ws.recv(), seconds(5)) == "got not json at all"
        assert await recv_json(ws) == {"also": "typed"}
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), seconds(5))
        assert ws.close_code == 1000


async def test_a_handler_that_loops_itself_keeps_its_messages(serve: Any) -> None:
    """Typed dispatch starts only when the endpoint's own handler returns."""
    app = Roost(__file__)

    @app.websocket("/both")
    async def both(websocket: WebSocket) -> None:
        while (text := await websocket.receive_text()) != "typed now":
            await websocket.send_text(f"raw {text}")

    @both.on(Ping)
    async def ping(websocket: WebSocket, msg: Ping) -> int:
        return msg.n

    async with (
        serve(app) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/both") as ws,
    ):
        await ws.send('{"type": "ping", "n": 1}')
        assert await asyncio.wait_for(ws.recv(), seconds(5)) == 'raw {"type": "ping", "n": 1}'
        await ws.send("typed now")
        await ws.send('{"type": "ping", "n": 1, "ref": 9}')
        assert await recv_json(ws) == {"type": "reply", "ref": 9, "data": 1}
