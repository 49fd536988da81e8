"""The health endpoints: their answers (roost.server.health), the Server's readiness states,
and HttpConnection answering them before the app's handler."""

from __future__ import annotations

import orjson
import pytest

from roost.protocol.http import HttpRequest
from roost.server.health import LIVENESS, READINESS, health_paths, health_response
from roost.server.http import HttpConnection
from tests.server.conftest import MakeServer
from tests.server.fakes import FakeTransport, connect, eventually
from tests.timing import seconds

pytestmark = pytest.mark.timeout(10)


def test_paths_switched_on_and_off() -> None:
    assert health_paths("/livez", "/readyz") == {"/livez": LIVENESS, "/readyz": READINESS}
    assert health_paths(None, "/ready") == {"/ready": READINESS}
    assert health_paths(None, None) == {}


@pytest.mark.parametrize(
    ("kind", "readiness", "status", "body"),
    [
        (LIVENESS, "starting", 200, {"status": "live"}),
        (LIVENESS, "draining", 200, {"status": "live"}),
        (READINESS, "starting", 503, {"status": "starting"}),
        (READINESS, "ready", 200, {"status": "ready"}),
        (READINESS, "draining", 503, {"status": "draining"}),
    ],
)
def test_answers(kind: str, readiness: str, status: int, body: dict[str, str]) -> None:
    for method in ("GET", "HEAD"):
        got_status, headers, got_body = health_response(kind, method, readiness)  # type: ignore[arg-type]
        assert (got_status, orjson.loads(got_body)) == (status, body)
        assert ("cache-control", "no-store") in headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_get_405(method: str) -> None:
    status, headers, _ = health_response(READINESS, method, "ready")
    assert status == 405 and ("allow", "GET, HEAD") in headers


async def test_readiness_follows_the_server(make_server: MakeServer) -> None:
    server = make_server()
    assert server.readiness == "starting"
    server.set_ready()
    assert server.readiness == "ready"
    server.drain()
    assert server.readiness == "draining"
    server.set_ready()  # a drain is for good
    assert server.readiness == "draining"
    other = make_server()
    other.set_ready()
    await other.shutdown(timeout=seconds(0))
    assert other.readiness == "draining"


async def test_health_requests_never_reach_the_handler(make_server: MakeServer) -> None:
    seen: list[str] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        seen.append(request.path)
        conn.send_response(200, [], b"app")

    server = make_server(handler)
    server.set_ready()
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(b"GET /readyz?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /livez HTTP/1.1\r\nHost: h\r\n\r\n")
    t.feed(b"GET /app HTTP/1.1\r\nHost: h\r\n\r\n")
    await t.until(lambda: t.data.count(b"HTTP/1.1 200") == 3)
    assert seen == ["/app"]
    assert b'{"status":"ready"}' in t.data and b'{"status":"live"}' in t.data
    await eventually(lambda: conn.idle)
    server.drain()
    t.writes.clear()
    t.feed(b"GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n")
    await t.until(lambda: t.data.endswith(b'{"status":"draining"}'))
    assert t.data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close" not in t.data  # served as before, until the shutdown


async def test_switched_off_paths_go_to_the_app(make_server: MakeServer) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.send_response(200, [], b"app")

    server = make_server(handler, liveness_path=None, readiness_path=None)
    t = FakeTransport()
    connect(server, t)
    t.feed(b"GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n")
    await t.until(lambda: t.data.endswith(b"app"))
