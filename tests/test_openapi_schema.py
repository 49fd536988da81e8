"""The OpenAPI document of HTTP routes is valid against the official JSON Schema of OpenAPI
3.1, as the ``openapi-spec-validator`` package ships it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import openapi_spec_validator

from roost import Roost
from roost.openapi import OpenAPI, OpenAPIInfo
from roost.types import JsonBody

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
