"""Robyn's route options, authentication, views, SubRouter forms, parameter names and
exceptions on roost, over real sockets."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from roost.auth import AuthenticationNotConfiguredError
from roost.compat.robyn import (
    AuthenticationHandler,
    BearerGetter,
    Headers,
    QueryParams,
    Request,
    Response,
    Robyn,
    SubRouter,
    status_codes,
)
from roost.compat.robyn.exceptions import HTTPException
from roost.compat.robyn.robyn import Identity
from roost.compat.robyn.types import Body, Files, FormData, JsonBody, PathParams
from tests.http_client import request


class Item(JsonBody):
    name: str


class TokenAuth(AuthenticationHandler):
    def authenticate(self, request: Request) -> Identity | None:
        token = self.token_getter.get_token(request)
        if token == "s3cret":
            return Identity(claims={"user": "bruce"})
        return None


class AsyncTokenAuth(AuthenticationHandler):
    async def authenticate(self, request: Request) -> Identity | None:
        await asyncio.sleep(0)
        token = self.token_getter.get_token(request)
        return Identity(claims={"user": "alfred"}) if token == "butler" else None


async def test_const_route_runs_its_handler_once(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    calls: list[int] = []

    @app.get("/version", const=True)
    def version() -> Response:
        calls.append(1)
        return Response(200, {"X-Build": "7"}, f"v{len(calls)}")

    @app.after_request("/version")
    def mark(response: Response) -> Response:
        response.headers.set("X-Marked", "1")  # changes this answer, never the kept one
        return response

    async with serve(app) as server:
        replies = [await request(server.port, "GET", "/version") for _ in range(3)]
    assert [r.body for r in replies] == [b"v1"] * 3
    assert all(r.headers["x-build"] == "7" and r.headers["x-marked"] == "1" for r in replies)
    assert calls == [1]


async def test_auth_required_routes(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    app.configure_authentication(TokenAuth(token_getter=BearerGetter()))

    @app.get("/me", auth_required=True)
    def me(request: Request) -> dict[str, Any]:
        return {"user": request.identity.claims["user"]}

    @app.get("/open")
    def open_route(request: Request) -> dict[str, Any]:
        return {"identity": request.identity}

    async with serve(app) as server:
        anonymous = await request(server.port, "GET", "/me")
        wrong = await request(server.port, "GET", "/me", headers={"Authorization": "Bearer no"})
        basic = await request(server.port, "GET", "/me", headers={"Authorization": "Basic x"})
        good = await request(server.port, "GET", "/me", headers={"Authorization": "Bearer s3cret"})
        public = await request(server.port, "GET", "/open")
    for refused in (anonymous, wrong, basic):
        assert refused.status == status_codes.HTTP_401_UNAUTHORIZED
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.body == b"Unauthorized"
    assert good.status == 200 and good.json() == {"user": "bruce"}
    assert public.json() == {"identity": None}


async def test_subrouter_auth_uses_its_own_handler_or_the_apps(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    app.configure_authentication(TokenAuth(BearerGetter()))
    staff = SubRouter("/staff")
    staff.configure_authentication(AsyncTokenAuth(BearerGetter()))
    plain = SubRouter("/plain")

    @staff.get("/who", auth_required=True)
    async def staff_who(request: Request) -> str:
        return request.identity.claims["user"]

    @plain.get("/who", auth_required=True)
    def plain_who(request: Request) -> str:
        return request.identity.claims["user"]

    app.include_router(staff)
    app.include_router(plain)
    async with serve(app) as server:
        butler = {"Authorization": "Bearer butler"}
        secret = {"Authorization": "Bearer s3cret"}
        assert (await request(server.port, "GET", "/staff/who", headers=butler)).body == b"alfred"
        assert (await request(server.port, "GET", "/staff/who", headers=secret)).status == 401
        assert (await request(server.port, "GET", "/plain/who", headers=secret)).body == b"bruce"


async def test_auth_required_without_a_handler_refuses_to_start() -> None:
    app = Robyn(__file__)

    @app.get("/me", auth_required=True)
    def me() -> str:
        return "me"

    with pytest.raises(AuthenticationNotConfiguredError, match="configure_authentication"):
        await app.create_server("127.0.0.1", 0)
    await app.shutdown()


async def test_every_method_status_code_and_openapi_options(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    path = "/thing"
    options = {"openapi_name": "A thing", "openapi_tags": ["things"], "deprecated": False}
    app.get(path, **options)(lambda: "get")  # type: ignore[arg-type]
    app.post(path, status_code=201, responses={201: "created"})(lambda: {"made": 1})
    app.put(path, include_in_schema=False)(lambda: "put")
    app.patch(path)(lambda: "patch")
    app.delete(path, status_code=204)(lambda: None)
    app.options(path)(lambda: Response(200, {"Allow": "GET, POST"}, ""))
    app.trace(path)(lambda: "trace")

    async with serve(app) as server:
        got = {m: await request(server.port, m, path) for m in ["GET", "POST", "PUT", "PATCH"]}
        deleted = await request(server.port, "DELETE", path)
        options_reply = await request(server.port, "OPTIONS", path)
        trace = await request(server.port, "TRACE", path)
        head = await request(server.port, "HEAD", path)
    assert {m: r.body for m, r in got.items()} == {
        "GET": b"get",
        "POST": b'{"made":1}',
        "PUT": b"put",
        "PATCH": b"patch",
    }
    assert got["POST"].status == 201 and deleted.status == 204
    assert options_reply.headers["allow"] == "GET, POST"
    assert trace.body == b"trace" and head.status == 200 and head.body == b""


async def test_views_function_class_and_decorator(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    greeting = "hello"

    @app.view("/function")
    def function_view():  # type: ignore[no-untyped-def]
        def get(request: Request, name: str = "world") -> str:
            return f"{greeting} {name}"  # a closure over the module works

        async def post(request: Request) -> bytes:
            return request.body

    class Items:
        def get(self) -> list[int]:
            return [1, 2]

        def delete(self, request: Request) -> Response:
            return Response(204, None, None)

    app.add_view("/items", Items)

    async with serve(app) as server:
        got = await request(server.port, "GET", "/function?name=gotham")
        posted = await request(server.port, "POST", "/function", body=b"raw")
        refused = await request(server.port, "PUT", "/function")
        items = await request(server.port, "GET", "/items")
        deleted = await request(server.port, "DELETE", "/items")
    assert got.body == b"hello gotham" and posted.body == b"raw"
    assert refused.status == 405 and refused.headers["allow"] == "GET, POST"
    assert items.json() == [1, 2] and deleted.status == 204


def test_views_without_handlers_or_with_parameters_are_refused() -> None:
    app = Robyn(__file__)

    def nothing() -> None:
        def helper() -> None: ...

    with pytest.raises(ValueError, match="defines no handler"):
        app.add_view("/a", nothing)

    def takes(x: int) -> None: ...

    with pytest.raises(TypeError, match="no parameters"):
        app.add_view("/b", takes)


async def test_subrouter_prefix_forms_and_tags(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    positional = SubRouter("/pos", tags=["pos"])
    legacy = SubRouter(__file__, prefix="/legacy")
    legacy_positional = SubRouter(__name__, "/both")

    @positional.get("/x", openapi_tags=["extra"])
    def pos_x() -> str:
        return "pos"

    @legacy.get("/x")
    def legacy_x() -> str:
        return "legacy"

    @legacy_positional.get("/")
    def both() -> str:
        return "both"

    for router in (positional, legacy, legacy_positional):
        app.include_router(router)
    async with serve(app) as server:
        assert (await request(server.port, "GET", "/pos/x")).body == b"pos"
        assert (await request(server.port, "GET", "/legacy/x")).body == b"legacy"
        assert (await request(server.port, "GET", "/both")).body == b"both"
        spec = (await request(server.port, "GET", "/openapi.json")).json()
    assert spec["paths"]["/pos/x"]["get"]["tags"] == ["pos", "extra"]  # type: ignore[index]


async def test_reserved_parameter_names_and_annotations(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)

    @app.post("/parts/:item")
    def parts(
        body: bytes,
        headers: Headers,
        query_params: QueryParams,
        path_params: dict[str, str],
        method: str,
        url: Any,
        ip_addr: str,
    ) -> dict[str, Any]:
        return {
            "body": body.decode(),
            "header": headers.get("x-h"),
            "q": query_params.get("q"),
            "path": path_params,
            "method": method,
            "path_of_url": url.path,
            "ip": ip_addr,
        }

    @app.post("/typed/:item")
    def typed(data: Item, params: PathParams, raw: Body, form: FormData, files: Files) -> Any:
        return {"data": data, "params": params, "raw": len(raw), "form": form, "files": files}

    async with serve(app) as server:
        reply = await request(
            server.port, "POST", "/parts/7?q=1", headers={"X-H": "h"}, body=b"payload"
        )
        typed_reply = await request(server.port, "POST", "/typed/3", body=b'{"name":"bat"}')
        bad_json = await request(server.port, "POST", "/typed/3", body=b"{not json")
    assert reply.json() == {
        "body": "payload",
        "header": "h",
        "q": "1",
        "path": {"item": "7"},
        "method": "POST",
        "path_of_url": "/parts/7",
        "ip": "127.0.0.1",
    }
    assert typed_reply.json() == {
        "data": {"name": "bat"},
        "params": {"item": "3"},
        "raw": 14,
        "form": {},
        "files": {},
    }
    assert bad_json.status == 400 and b"invalid JSON body" in bad_json.body


async def test_exceptions_reach_the_exception_handler(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)

    @app.exception
    def on_error(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return Response(error.status_code, None, error.detail)
        return Response(500, None, "sorry")

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async with serve(app) as server:
        teapot_reply = await request(server.port, "GET", "/teapot")
        boom_reply = await request(server.port, "GET", "/boom")
    assert (teapot_reply.status, teapot_reply.body) == (418, b"I'm a Teapot")
    assert (boom_reply.status, boom_reply.body) == (500, b"sorry")


async def test_sync_handlers_block_only_themselves(serve) -> None:  # type: ignore[no-untyped-def]
    """Robyn users write blocking sync handlers; on roost they run in the thread pool."""
    app = Robyn(__file__)
    released = threading.Event()

    @app.get("/slow")
    def slow() -> str:
        assert released.wait(5), "/fast was not served while /slow blocked"
        time.sleep(0)
        return "slow"

    @app.get("/fast")
    def fast() -> str:
        released.set()
        return "fast"

    async with serve(app) as server:
        slow_task = asyncio.ensure_future(request(server.port, "GET", "/slow"))
        assert (await request(server.port, "GET", "/fast")).body == b"fast"
        assert (await slow_task).body == b"slow"


async def test_startup_and_shutdown_handlers(serve) -> None:  # type: ignore[no-untyped-def]
    app = Robyn(__file__)
    events: list[str] = []
    app.startup_handler(lambda: events.append("up"))

    @app.shutdown_handler
    async def down() -> None:
        events.append("down")

    async with serve(app):
        assert events == ["up"]
    assert events == ["up", "down"]
