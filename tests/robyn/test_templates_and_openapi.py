"""Jinja2 templates and the OpenAPI routes of a Robyn app on roost."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import Roost
from roost.compat.robyn import Request, Robyn
from roost.compat.robyn.openapi import OpenAPI, OpenAPIInfo
from roost.compat.robyn.templating import JinjaTemplate
from tests.http_client import request


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    (tmp_path / "page.html").write_text("<h1>Hello {{ name }}</h1>", encoding="utf-8")
    (tmp_path / "note.txt").write_text("plain {{ name }}", encoding="utf-8")
    return tmp_path


async def test_jinja_templates_escape_html(serve, template_dir: Path) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    jinja = JinjaTemplate(template_dir)

    @app.get("/hello")
    def hello(request: Request) -> object:
        return jinja.render_template("page.html", name=request.query_params.get("name"))

    @app.get("/missing")
    def missing() -> object:
        return jinja.render_template("../secret.html")

    @app.exception
    def on_error(error: Exception) -> object:
        return (type(error).__name__, {}, 404)

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/hello?name=%3Cscript%3E")
        escape = await request(server.port, "GET", "/missing")
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.body == b"<h1>Hello &lt;script&gt;</h1>"
    assert (escape.status, escape.body) == (404, b"TemplateNotFound")


def test_render_finds_templates_next_to_the_caller(template_dir: Path) -> None:
    from roost.compat.robyn.templating import render

    response = render("note.txt", templates_dir=str(template_dir), name="<b>")
    assert response.body == b"plain &lt;b&gt;"  # autoescaping is on by default
    local = Path(__file__).parent / "templates"
    local.mkdir(exist_ok=True)
    try:
        (local / "here.html").write_text("{{ x }}", encoding="utf-8")
        assert render("here.html", x=1).body == b"1"
    finally:
        (local / "here.html").unlink()
        local.rmdir()


async def test_openapi_document_and_docs_page(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__, openapi=OpenAPI(info=OpenAPIInfo(title="Gotham", version="2.0")))

    @app.get("/items/:item_id", openapi_name="Read an item", openapi_tags=["items"])
    def read(item_id: int, verbose: bool = False) -> dict[str, int]:
        """One item."""
        return {"id": item_id}

    @app.post("/secret", auth_required=True, deprecated=True)
    def secret() -> str:
        return "s"

    @app.get("/hidden", include_in_schema=False)
    def hidden() -> str:
        return "h"

    class Auth:  # any object with authenticate() and unauthorized_response will do
        unauthorized_response = None

        def authenticate(self, request: Request) -> None:
            return None

    app.configure_authentication(Auth())  # type: ignore[arg-type]
    async with serve(app) as server:
        spec = (await request(server.port, "GET", "/openapi.json")).json()
        docs = await request(server.port, "GET", "/docs")
    assert isinstance(spec, dict)
    assert spec["info"] == {"title": "Gotham", "version": "2.0"}
    item = spec["paths"]["/items/{item_id}"]["get"]
    assert item["summary"] == "Read an item" and item["tags"] == ["items"]
    assert item["description"] == "One item."
    assert item["parameters"] == [
        {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean"}},
    ]
    assert spec["paths"]["/secret"]["post"]["security"] == [{"BearerAuth": []}]
    assert spec["paths"]["/secret"]["post"]["deprecated"] is True
    assert "/hidden" not in spec["paths"] and "/docs" not in spec["paths"]
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert docs.status == 200 and b"<title>Gotham</title>" in docs.body
    assert b"http://" not in docs.body and b"https://" not in docs.body  # works offline


async def test_openapi_is_off_for_a_plain_roost_app_and_disabled_by_the_flag(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.argv", ["app.py", "--disable-openapi"])
    for app in (Roost(__file__), Robyn(__file__)):
        async with serve(app) as server:
            assert (await request(server.port, "GET", "/openapi.json")).status == 404
            assert (await request(server.port, "GET", "/docs")).status == 404
