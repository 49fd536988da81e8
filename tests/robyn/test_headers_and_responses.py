"""Robyn's headers and response API on roost, over real sockets: Headers from a dict,
request.headers.set in a before hook, response.headers.set in an after hook, default request
and response headers, jsonify, tuple returns, cookies, Request.url."""

from __future__ import annotations

import pytest

from roost.compat.robyn import Headers, Request, Response, Robyn, jsonify
from tests.http_client import request
from tests.timing import seconds


def make_app() -> Robyn:
    return Robyn(__file__, config=None, openapi=None)


async def test_headers_from_a_dict_and_set_in_hooks(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()

    @app.before_request()
    def tag(request: Request) -> Request:
        request.headers.set("X-Seen", "before")
        return request

    @app.after_request()
    def stamp(response: Response) -> Response:
        response.headers.set("X-Stamp", "after")
        return response

    @app.get("/echo")
    def echo(request: Request) -> Response:
        headers = Headers({"Content-Type": "application/json"})
        headers.append("X-Multi", "1")
        headers.append("X-Multi", "2")
        return Response(200, headers, jsonify({"seen": request.headers.get("x-seen")}))

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/echo")
    assert reply.status == 200 and reply.json() == {"seen": "before"}
    assert reply.headers["x-stamp"] == "after"
    assert reply.headers["content-type"] == "application/json"


async def test_a_shared_headers_object_is_not_changed_by_responses(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    shared = Headers({"X-Shared": "1"})

    @app.get("/a")
    def a() -> Response:
        return Response(200, shared, "text")

    async with serve(app) as server:
        for _ in range(2):
            reply = await request(server.port, "GET", "/a")
            assert reply.headers["x-shared"] == "1"
    assert shared.items() == [("X-Shared", "1")]


async def test_default_response_and_request_headers(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    app.set_response_header("X-Frame-Options", "DENY")
    app.add_response_header("X-Powered", "roost")
    app.set_response_header("X-Powered", "roost!")  # replaces the earlier default
    app.add_request_header("X-Internal", "yes")
    app.exclude_response_headers_for(["/raw"])

    @app.get("/page")
    def page(request: Request) -> dict[str, str | None]:
        return {"internal": request.headers.get("x-internal")}

    @app.get("/own")
    def own() -> Response:
        return Response(200, {"X-Frame-Options": "SAMEORIGIN"}, "mine")

    @app.get("/raw")
    def raw() -> str:
        return "raw"

    async with serve(app) as server:
        page_reply = await request(server.port, "GET", "/page")
        own_reply = await request(server.port, "GET", "/own")
        raw_reply = await request(server.port, "GET", "/raw")
        missing = await request(server.port, "GET", "/nowhere")
    assert page_reply.json() == {"internal": "yes"}
    assert page_reply.headers["x-frame-options"] == "DENY"
    assert page_reply.headers["x-powered"] == "roost!"
    assert own_reply.headers["x-frame-options"] == "SAMEORIGIN"  # the handler's wins
    assert "x-frame-options" not in raw_reply.headers
    assert missing.status == 404 and missing.headers["x-frame-options"] == "DENY"


async def test_tuple_returns_body_keyword_and_cookies(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()

    @app.get("/tuple")
    def as_tuple() -> tuple[object, dict[str, str], int]:
        return {"made": True}, {"X-Kind": "tuple"}, 201

    @app.get("/body")
    def body() -> Response:
        response = Response(status_code=202, headers=None, body="by keyword")
        response.set_cookie("session", "abc123", path="/", http_only=True, same_site="lax")
        response.set_cookie("session", "def456", max_age=60)  # replaces the first
        response.set_cookie("theme", "dark", secure=True)
        return response

    async with serve(app) as server:
        tuple_reply = await request(server.port, "GET", "/tuple")
        body_reply, raw = await raw_request(server.port, "/body")
    assert tuple_reply.status == 201 and tuple_reply.json() == {"made": True}
    assert tuple_reply.headers["x-kind"] == "tuple"
    assert body_reply == 202
    cookies = [line for line in raw.split("\r\n") if line.lower().startswith("set-cookie")]
    assert cookies == ["set-cookie: session=def456; Max-Age=60", "set-cookie: theme=dark; Secure"]


async def raw_request(port: int, path: str) -> tuple[int, str]:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), seconds(5))
    writer.close()
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    return int(head.split()[1]), head


@pytest.mark.parametrize(
    ("name", "value", "options", "message"),
    [
        ("bad name", "v", {}, "cookie name"),
        ("ok", "a;b", {}, "cookie value"),
        ("ok", "v\r\nX-Injected: 1", {}, "cookie value"),
        ("ok", "v", {"path": "/;x"}, "Path"),
        ("ok", "v", {"domain": "a\nb"}, "Domain"),
        ("ok", "v", {"same_site": "sometimes"}, "same_site"),
    ],
)
def test_cookies_that_could_break_the_header_are_refused(
    name: str, value: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Response(200).set_cookie(name, value, **options)  # type: ignore[arg-type]


async def test_request_url_is_an_object(serve) -> None:  # type: ignore[no-untyped-def]
    app = make_app()

    @app.get("/where/:thing")
    def where(request: Request) -> dict[str, str]:
        url = request.url
        return {"scheme": url.scheme, "host": url.host, "path": url.path, "full": str(url)}

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/where/x?q=1")
    assert reply.json() == {
        "scheme": "http",
        "host": "127.0.0.1",
        "path": "/where/x",
        "full": "http://127.0.0.1/where/x?q=1",
    }


def test_jsonify() -> None:
    assert jsonify({"a": [1, 2]}) == '{"a":[1,2]}'
