"""The API documents over a real socket: ``/asyncapi.json`` and ``/asyncapi`` beside
``/openapi.json`` and ``/docs`` when the app has ``openapi`` on, none of them when it is off,
and a Robyn app's ``--disable-openapi`` turns them all off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from roost import Roost, WebSocket
from roost.compat.robyn import Robyn
from tests.http_client import request

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "asyncapi-3.0.0.json").read_text())


class Ping(msgspec.Struct, tag="ping", tag_field="type"):
    n: int


def with_endpoint(app: Roost) -> Roost:
    @app.websocket("/rooms/:room", subprotocols=["chat.v1"])
    async def rooms(websocket: WebSocket, room: str, nick: str) -> None: ...

    @rooms.on(Ping)
    async def ping(websocket: WebSocket, msg: Ping) -> int:
        return msg.n

    return app


async def test_the_documents_and_pages_are_served(serve: Any) -> None:
    app = with_endpoint(Roost(__file__, openapi=True))
    async with serve(app) as server:
        spec = await request(server.port, "GET", "/asyncapi.json")
        page = await request(server.port, "GET", "/asyncapi")
        openapi = await request(server.port, "GET", "/openapi.json")
    assert spec.status == 200 and spec.headers["content-type"].startswith("application/json")
    doc = spec.json()
    errors = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(doc)]
    assert not errors, errors
    assert doc["channels"]["rooms_room"]["address"] == "/rooms/{room}"
    assert "rooms_room_receive_Ping" in doc["operations"]
    assert page.status == 200 and b'fetch("/asyncapi.json")' in page.body
    assert b"http://" not in page.body and b"https://" not in page.body
    assert "/asyncapi.json" not in openapi.json()["paths"]  # the documents' own routes are hidden


@pytest.mark.parametrize("path", ["/asyncapi.json", "/asyncapi", "/openapi.json", "/docs"])
async def test_off_by_default(serve: Any, path: str) -> None:
    async with serve(with_endpoint(Roost(__file__))) as server:
        assert (await request(server.port, "GET", path)).status == 404


async def test_a_robyn_app_serves_them_and_the_flag_turns_them_off(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["app.py"])
    async with serve(with_endpoint(Robyn(__file__))) as server:
        assert (await request(server.port, "GET", "/asyncapi.json")).status == 200
        assert (await request(server.port, "GET", "/asyncapi")).status == 200
    monkeypatch.setattr("sys.argv", ["app.py", "--disable-openapi"])
    async with serve(with_endpoint(Robyn(__file__))) as server:
        assert (await request(server.port, "GET", "/asyncapi.json")).status == 404
        assert (await request(server.port, "GET", "/asyncapi")).status == 404


async def test_a_route_of_the_app_at_the_path_wins(serve: Any) -> None:
    app = Roost(__file__, openapi=True)

    @app.get("/asyncapi")
    async def own() -> str:
        return "mine"

    async with serve(app) as server:
        assert (await request(server.port, "GET", "/asyncapi")).body == b"mine"
        assert (await request(server.port, "GET", "/asyncapi.json")).status == 200
