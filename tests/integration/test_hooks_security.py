"""Hooks are matched against the chosen route, on HTTP and on WebSocket handshakes."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from roost import Request, Response, Roost, SubRouter
from tests.http_client import request
from tests.timing import seconds

SPELLINGS = [
    "/admin/users/7",
    "/admin/users/7/",
    "/admin/users/7//",
    "/admin/users/7/?x=1",
    "/admin/users/7?x=1",
    "/admin/users/%37",
    "/admin/users/7%2F",
    "/admin%2Fusers/7",
    "/admin/users/7%2F%2F?y",
]


def guarded_app(hook_path: str) -> Roost:
    app = Roost(__file__)

    @app.before_request(hook_path)
    def auth(request: Request):  # type: ignore[no-untyped-def]
        if request.headers.get("authorization") != "Bearer ok":
            return Response(401, None, "unauthorized")
        return request

    @app.get("/admin/users/:uid")
    def user(uid: str):  # type: ignore[no-untyped-def]
        return {"user": uid, "secret": "data"}

    @app.websocket("/admin/live/:uid")
    async def live(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("secret stream")

    return app


@pytest.mark.parametrize("hook_path", ["/admin/users/:uid", "/admin/users/{id}", "/admin/users/7"])
async def test_every_spelling_that_reaches_a_route_passes_its_hooks(serve, hook_path) -> None:  # type: ignore[no-untyped-def]
    async with serve(guarded_app(hook_path)) as server:
        for path in SPELLINGS:
            for method in ("GET", "HEAD"):
                reply = await request(server.port, method, path)
                assert reply.status == 401, (method, path, reply.status, reply.body)
                assert b"secret" not in reply.body
            ok = await request(server.port, "GET", path, headers={"Authorization": "Bearer ok"})
            assert ok.status == 200, path
            assert ok.json() == {"user": "7", "secret": "data"}


async def test_path_hook_guards_a_websocket_endpoint_for_every_spelling(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(guarded_app("/admin/live/:uid")) as server:
        for path in ("/admin/live/7", "/admin/live/7/", "/admin/live/7//", "/admin/live/%37?a=b"):
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}"):
                    pass
            assert info.value.response.status_code == 401, path
        url = f"ws://127.0.0.1:{server.port}/admin/live/7/"
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer ok"}) as ws:
            assert await ws.recv() == "secret stream"


def subrouter_app(events: list[str]) -> Roost:
    app = Roost(__file__)
    api = SubRouter(__file__, prefix="/api")

    @api.before_request()
    def api_auth(request: Request):  # type: ignore[no-untyped-def]
        events.append(f"before {request.path}")
        if request.query_params.get("token") != "t":
            return Response(401, None, "api token required")
        return None

    @api.after_request()
    def api_stamp(response: Response) -> Response:
        response.set_header("x-api", "1")
        return response

    @api.get("/items/:id")
    def item(id: int):  # type: ignore[no-untyped-def]
        return {"id": id}

    @api.websocket("/feed")
    async def feed(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("feed")

    @app.get("/public")
    def public():  # type: ignore[no-untyped-def]
        return "public"

    app.include_router(api)
    return app


async def test_subrouter_wide_hooks_run_for_its_routes_only(serve) -> None:  # type: ignore[no-untyped-def]
    events: list[str] = []
    async with serve(subrouter_app(events)) as server:
        for path in ("/api/items/7", "/api/items/7/", "/api/items/7//?a=1"):
            denied = await request(server.port, "GET", path)
            assert (denied.status, denied.body) == (401, b"api token required"), path
            assert denied.headers["x-api"] == "1"
        ok = await request(server.port, "GET", "/api/items/7?token=t")
        assert ok.status == 200
        assert ok.json() == {"id": 7}
        assert ok.headers["x-api"] == "1"
        events.clear()
        public = await request(server.port, "GET", "/public")
        assert public.status == 200
        assert "x-api" not in public.headers
        assert events == []  # the router's hooks are not the app's
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/feed"):
                pass
        assert info.value.response.status_code == 401
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/feed?token=t") as ws:
            assert await ws.recv() == "feed"


def test_subrouter_refuses_registration_after_it_is_mounted() -> None:
    app = Roost(__file__)
    api = SubRouter(__file__, prefix="/api")
    app.include_router(api)
    with pytest.raises(RuntimeError, match="already mounted"):
        api.get("/late")(lambda: "late")
    with pytest.raises(RuntimeError, match="already mounted"):
        api.before_request()(lambda request: None)
    with pytest.raises(RuntimeError, match="already mounted"):
        app.include_router(api)


async def test_global_hook_guards_websocket_handshakes_in_documented_order(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    order: list[str] = []

    @app.before_request()
    def auth(request: Request):  # type: ignore[no-untyped-def]
        order.append("before_request")
        if request.headers.get("authorization") != "Bearer ok":
            return Response(401, {"www-authenticate": "Bearer"}, "log in first")
        request.headers = type(request.headers)([*request.headers.items(), ("x-user", "ann")])
        return request

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        order.append("handler")
        await websocket.send_text("in")

    @ws.before_connect
    def check(request: Request) -> None:
        order.append(f"before_connect user={request.headers.get('x-user')}")

    async with serve(app) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        # No credentials, cross-site origin: the hook answers first (401, not 403).
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url, origin="https://evil.example"):
                pass
        assert info.value.response.status_code == 401
        assert info.value.response.body == b"log in first"
        assert order == ["before_request"]
        order.clear()
        # Credentials but a cross-site origin: the origin check comes next.
        with pytest.raises(InvalidStatus) as info:
            auth = {"Authorization": "Bearer ok"}
            evil = "https://evil.example"
            async with websockets.connect(url, origin=evil, additional_headers=auth):
                pass
        assert info.value.response.status_code == 403
        assert order == ["before_request"]
        order.clear()
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer ok"}) as c:
            assert await c.recv() == "in"
        assert order == ["before_request", "before_connect user=ann", "handler"]


async def test_hook_that_raises_on_a_handshake_gets_500_and_server_goes_on(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.before_request()
    def broken(request: Request) -> None:
        raise RuntimeError("hook bug")

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("never")

    async with serve(app) as server:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws"):
                pass
        assert info.value.response.status_code == 500
        reply = await asyncio.wait_for(request(server.port, "GET", "/nothing"), seconds(5))
        assert reply.status == 500  # the global hook runs for unknown paths too
