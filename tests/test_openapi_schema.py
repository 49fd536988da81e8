"""The OpenAPI document of HTTP routes is valid against the official JSON Schema of OpenAPI
3.1, as the ``openapi-spec-validator`` package ships it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import openapi_spec_validator

from roost import Roost
from roost.openapi import OpenAPI, OpenAPIInfo
from roost.types import JsonBody
from tests.http_client import request

SCHEMA_FILE = (
    Path(openapi_spec_validator.__file__).parent / "resources" / "schemas" / "v3.1" / "schema.json"
)
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def document() -> dict[str, Any]:
    app = Roost(__file__, openapi=OpenAPI(info=OpenAPIInfo(title="Notes", version="2.0")))

    @app.get("/notes/:note_id", openapi_tags=["notes"], responses={404: "No such note"})
    async def read(note_id: int, full: bool = False) -> dict[str, Any]:
        """One note."""
        return {}

    @app.post("/notes", auth_required=True, status_code=201, deprecated=True)
    async def create(body: JsonBody) -> dict[str, Any]:
        return {}

    assert app.openapi is not None
    return app.openapi.document(app.routes.http.entries())


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors


def test_the_validator_rejects_a_broken_document() -> None:
    broken = copy.deepcopy(document())
    del broken["paths"]["/notes/{note_id}"]["get"]["responses"]["200"]["description"]
    assert list(VALIDATOR.iter_errors(broken))
    broken = copy.deepcopy(document())
    broken["paths"]["/notes/{note_id}"]["get"]["parameters"][0]["in"] = "body"
    assert list(VALIDATOR.iter_errors(broken))


class Item(msgspec.Struct):
    """A thing for sale."""

    name: str
    price: float
    tags: list[str] = []


class Created(msgspec.Struct):
    id: int
    item: Item


def typed_app() -> Roost:
    app = Roost(__file__, openapi=True)

    @app.post("/items")
    async def create(item: Item) -> Created:
        return Created(id=7, item=item)

    @app.get("/items")
    async def listing(limit: int = 10) -> list[Item]:
        return [Item(name="pen", price=1.5)][:limit]

    return app


def test_typed_bodies_and_responses_are_described_and_valid() -> None:
    app = typed_app()
    assert app.openapi is not None
    doc = app.openapi.document(app.routes.http.entries())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors
    post = doc["paths"]["/items"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Item"}
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Created"}
    assert "400" in post["responses"]
    listed = doc["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}
    schemas = doc["components"]["schemas"]
    assert schemas["Item"]["required"] == ["name", "price"]
    assert schemas["Item"]["properties"]["price"] == {"type": "number"}
    assert schemas["Created"]["properties"]["item"] == {"$ref": "#/components/schemas/Item"}


async def test_typed_bodies_are_validated_and_typed_values_returned(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(typed_app()) as server:
        ok = await request(server.port, "POST", "/items", body=b'{"name": "pen", "price": 1.5}')
        assert ok.status == 200
        assert ok.headers["content-type"] == "application/json"
        assert ok.json() == {"id": 7, "item": {"name": "pen", "price": 1.5, "tags": []}}
        wrong = await request(server.port, "POST", "/items", body=b'{"name": "pen", "price": "x"}')
        assert (wrong.status, wrong.body) == (
            400,
            b"invalid body: Expected `float`, got `str` - at `$.price`",
        )
        missing = await request(server.port, "POST", "/items", body=b'{"price": 2}')
        assert missing.status == 400 and b"missing required field `name`" in missing.body
        garbage = await request(server.port, "POST", "/items", body=b"{not json")
        assert garbage.status == 400 and garbage.body.startswith(b"invalid JSON body")
        deep = b'{"name": "x", "price": 1, "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        nested = await request(server.port, "POST", "/items", body=deep)
        assert (nested.status, nested.body) == (400, b"invalid JSON body: nested too deeply")
        listed = await request(server.port, "GET", "/items?limit=1")
        assert listed.json() == [{"name": "pen", "price": 1.5, "tags": []}]
