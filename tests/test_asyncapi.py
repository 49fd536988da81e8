"""The AsyncAPI 3.0 document of WebSocket endpoints: what it says about paths, parameters,
subprotocols, messages in each direction and replies, and that it is valid against the
official JSON Schema of AsyncAPI 3.0.0 (tests/schemas/asyncapi-3.0.0.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec

from roost import Roost, WebSocket
from roost.asyncapi import asyncapi_document, asyncapi_page

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def assert_valid(doc: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors


class Move(msgspec.Struct, tag="move", tag_field="type"):
    """A player moves."""

    x: int
    y: int


class Chat(msgspec.Struct, tag="chat", tag_field="type"):
    text: str


class Moved(msgspec.Struct, tag="moved", tag_field="type"):
    player: str
    x: int
    y: int


class Position(msgspec.Struct):
    x: int
    y: int


def game_app() -> Roost:
    app = Roost(__file__)

    @app.websocket("/games/:game_id", subprotocols=["game.v1", "game.v2"], encoding="msgpack")
    async def game(websocket: WebSocket, game_id: int, token: str, spectate: bool = False) -> None:
        """One game's players."""

    @game.on(Move, reply=Position)
    async def move(websocket: WebSocket, msg: Move) -> Any:
        """Move and get the new position."""
        return Position(msg.x, msg.y)

    @game.on(Chat)
    async def chat(websocket: WebSocket, msg: Chat) -> list[str]:
        return [msg.text]

    game.sends(Moved)

    @app.websocket("/plain")
    async def plain(websocket: WebSocket) -> None:
        await websocket.receive_text()

    return app


def document() -> dict[str, Any]:
    return asyncapi_document(game_app().routes.websockets.entries())


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert_valid(doc)


def test_the_validator_rejects_a_broken_document() -> None:
    doc = document()
    broken = copy.deepcopy(doc)
    broken["operations"]["games_game_id_send"]["action"] = "publish"  # AsyncAPI 2's word
    assert list(VALIDATOR.iter_errors(broken))
    broken = copy.deepcopy(doc)
    del broken["channels"]["games_game_id"]["address"]
    broken["channels"]["games_game_id"]["adress"] = "/x"
    assert list(VALIDATOR.iter_errors(broken))


def test_path_and_query_parameters_and_subprotocols() -> None:
    channel = document()["channels"]["games_game_id"]
    assert channel["address"] == "/games/{game_id}"
    assert channel["description"] == "One game's players."
    assert "integer" in channel["parameters"]["game_id"]["description"]
    ws = channel["bindings"]["ws"]
    assert ws["query"]["properties"] == {
        "token": {"type": "string"},
        "spectate": {"type": "boolean"},
    }
    assert ws["query"]["required"] == ["token"]
    assert ws["headers"]["properties"]["Sec-WebSocket-Protocol"]["enum"] == ["game.v1", "game.v2"]


def test_messages_in_each_direction_with_their_schemas() -> None:
    doc = document()
    ops = doc["operations"]
    receive = ops["games_game_id_receive_Move"]
    assert receive["action"] == "receive"
    assert receive["messages"] == [{"$ref": "#/channels/games_game_id/messages/Move"}]
    assert receive["description"] == "Move and get the new position."
    send = ops["games_game_id_send"]
    assert send["action"] == "send"
    assert [m["$ref"].rsplit("/", 1)[1] for m in send["messages"]] == ["Moved", "Error"]
    schemas = doc["components"]["schemas"]
    assert schemas["Move"]["properties"]["type"] == {"enum": ["move"]}
    assert schemas["Move"]["required"] == ["type", "x", "y"]
    assert schemas["Moved"]["properties"]["player"] == {"type": "string"}
    assert schemas["Error"]["required"] == ["type", "code", "message"]
    messages = doc["components"]["messages"]
    assert messages["Move"]["payload"] == {"$ref": "#/components/schemas/Move"}
    assert messages["Move"]["contentType"] == "application/msgpack"


def test_replies_declared_or_from_the_return_annotation() -> None:
    doc = document()
    ops = doc["operations"]
    refs = [m["$ref"] for m in ops["games_game_id_receive_Move"]["reply"]["messages"]]
    assert refs == [
        "#/channels/games_game_id/messages/MoveReply",
        "#/channels/games_game_id/messages/Error",
    ]
    messages = doc["components"]["messages"]
    move_reply = messages["MoveReply"]["payload"]
    assert move_reply["properties"]["type"] == {"enum": ["reply"]}
    assert move_reply["required"] == ["type", "ref"]
    assert move_reply["properties"]["data"] == {"$ref": "#/components/schemas/Position"}
    chat_reply = messages["ChatReply"]["payload"]["properties"]["data"]
    assert chat_reply == {"type": "array", "items": {"type": "string"}}


def test_an_untyped_endpoint_is_a_channel_without_messages() -> None:
    doc = document()
    assert doc["channels"]["plain"] == {"address": "/plain"}
    assert not [op for op in doc["operations"].values() if op["channel"]["$ref"].endswith("/plain")]


def test_the_typed_example_documents_what_it_sends() -> None:
    from examples.typed.app import app

    doc = asyncapi_document(app.routes.websockets.entries())
    assert_valid(doc)
    sent = doc["operations"]["chat_send"]["messages"]
    assert {"$ref": "#/channels/chat/messages/Said"} in sent


def test_a_reply_type_msgspec_cannot_describe_is_left_open() -> None:
    app = Roost(__file__)

    @app.websocket("/x")
    async def x(websocket: WebSocket) -> None: ...

    @x.on(Chat)
    async def chat(websocket: WebSocket, msg: Chat) -> WebSocket:
        return websocket

    doc = asyncapi_document(app.routes.websockets.entries())
    assert doc["components"]["messages"]["ChatReply"]["payload"]["properties"]["data"] == {}
    assert_valid(doc)


def test_the_page_is_self_contained_and_escapes_the_title() -> None:
    page = asyncapi_page("<Game>")
    assert "&lt;Game&gt;" in page and "<Game>" not in page
    assert "http://" not in page and "https://" not in page


def test_sends_keeps_each_type_once() -> None:
    app = Roost(__file__)

    @app.websocket("/x")
    async def x(websocket: WebSocket) -> None: ...

    x.sends(Moved, Moved)
    assert x.messages.sent == [Moved]


def test_history_and_presence_events_are_documented() -> None:
    from roost import RoomHistory

    app = Roost(__file__)

    @app.websocket("/rooms", history=RoomHistory(), presence_events=True)
    async def rooms(websocket: WebSocket) -> None:
        await websocket.receive_text()

    @app.websocket("/events-only", presence_events=True)
    async def events_only(websocket: WebSocket) -> None:
        await websocket.receive_text()

    doc = asyncapi_document(app.routes.websockets.entries())
    assert_valid(doc)
    send = doc["operations"]["rooms_send_roost"]
    names = [m["$ref"].rsplit("/", 1)[1] for m in send["messages"]]
    assert names == ["RoomMessage", "RoomNotice", "PresenceEvent"]
    notice = doc["components"]["messages"]["RoomNotice"]["payload"]
    assert notice["properties"]["reason"]["enum"] == [
        "epoch",
        "trimmed",
        "expired",
        "ahead",
        "unavailable",
    ]
    query = doc["channels"]["rooms"]["bindings"]["ws"]["query"]["properties"]
    assert "roost_resume" in query
    only = doc["operations"]["events-only_send_roost"]["messages"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in only] == ["PresenceEvent"]
    assert "bindings" not in doc["channels"]["events-only"]
