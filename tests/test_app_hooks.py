"""SubRouter, middlewares, exception handlers and CORS, over a real socket."""

from __future__ import annotations

import pytest
import websockets

from roost import Request, Response, Roost, SubRouter
from tests.http_client import request


def make_app() -> Roost:
    app = Roost(__file__)
    app.inject(source="app")
    api = SubRouter(__file__, prefix="/api")
    api.inject(source="api")

    @api.get("/items/:item_id")
    def item(request: Request, item_id: int, router_dependencies=None):  # type: ignore[no-untyped-def]
        return {"id": item_id, "source": router_dependencies["source"]}

    @api.websocket("/ws")
    async def api_ws(websocket, router_dependencies=None):  # type: ignore[no-untyped-def]
        await websocket.send_text(f"{websocket.endpoint} {router_dependencies['source']}")

    @app.get("/plain")
    def plain_route(router_dependencies=None):  # type: ignore[no-untyped-def]
        return router_dependencies["source"]

    @app.get("/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("kaput")

    @app.exception
    def on_error(error: Exception) -> Response:
        return Response(500, {"x-error": "yes"}, f"handled: {error}")

    @app.before_request("/api/items/:item_id")
    def deny_secret(request: Request):  # type: ignore[no-untyped-def]
        if request.path_params.get("item_id") == "13" or request.path.endswith("/13"):
            return Response(403, None, "unlucky")
        return request

    @app.after_request()
    def stamp(response: Response) -> Response:
        response.set_header("x-stamped", "1")
        return response

    app.include_router(api)
    app.add_cors(["https://good.example"])
    return app


async def test_subrouter_routes_and_dependencies(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        reply = await request(server.port, "GET", "/api/items/7")
        assert reply.status == 200
        assert reply.json() == {"id": 7, "source": "api"}
        assert (await request(server.port, "GET", "/plain")).body == b"app"
        assert (await request(server.port, "GET", "/items/7")).status == 404
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/ws") as ws:
            assert await ws.recv() == "/api/ws api"


async def test_middlewares_exception_handler(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        denied = await request(server.port, "GET", "/api/items/13")
        assert (denied.status, denied.body) == (403, b"unlucky")
        assert denied.headers["x-stamped"] == "1"
        boom = await request(server.port, "GET", "/boom")
        assert boom.status == 500
        assert boom.body == b"handled: kaput"
        assert boom.headers["x-error"] == "yes"


async def test_cors(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app()) as server:
        pre = await request(
            server.port,
            "OPTIONS",
            "/plain",
            headers={"Origin": "https://good.example", "Access-Control-Request-Method": "GET"},
        )
        assert pre.status == 204
        assert pre.headers["access-control-allow-origin"] == "https://good.example"
        bad = await request(
            server.port,
            "OPTIONS",
            "/plain",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert bad.status == 403
        ok = await request(server.port, "GET", "/plain", headers={"Origin": "https://good.example"})
        assert ok.headers["access-control-allow-origin"] == "https://good.example"
        other = await request(
            server.port, "GET", "/plain", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_unhandled_error_is_500_and_server_keeps_serving(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("kaput")

    @app.get("/ok")
    def ok():  # type: ignore[no-untyped-def]
        return "fine"

    async with serve(app) as server:
        assert (await request(server.port, "GET", "/boom")).status == 500
        assert (await request(server.port, "GET", "/ok")).body == b"fine"


def test_cors_refuses_credentials_with_the_wildcard_origin() -> None:
    app = Roost(__file__)
    with pytest.raises(ValueError, match="allow_credentials=True cannot be combined"):
        app.add_cors(allow_credentials=True)
    with pytest.raises(ValueError, match="wildcard"):
        app.add_cors(["https://a.example", "*"], allow_credentials=True)
    with pytest.raises(ValueError, match="'null'"):
        app.add_cors(["null"], allow_credentials=True)


async def test_cors_with_credentials_reflects_only_listed_origins(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/me")
    def me():  # type: ignore[no-untyped-def]
        return {"user": "ann"}

    app.add_cors(["https://app.example"], allow_credentials=True)
    async with serve(app) as server:
        good = await request(server.port, "GET", "/me", headers={"Origin": "https://app.example"})
        assert good.headers["access-control-allow-origin"] == "https://app.example"
        assert good.headers["access-control-allow-credentials"] == "true"
        evil = await request(server.port, "GET", "/me", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
        assert "access-control-allow-credentials" not in evil.headers
