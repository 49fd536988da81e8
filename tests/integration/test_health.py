"""Liveness and readiness endpoints, and the drain: readiness turns 503 at the first SIGTERM,
before any WebSocket gets its 1001, and with a drain delay the server keeps serving meanwhile;
under --processes every worker's readiness turns."""

from __future__ import annotations

import asyncio
import json
import signal
import socket

import websockets

from roost import Request, Response, Roost, ServerOptions
from roost.process import StopRequests
from tests.http_client import answering, read_response, request, request_bytes
from tests.integration.cluster import ClusterServer
from tests.timing import eventually, seconds


def app_with_hooks(**options: object) -> tuple[Roost, list[str]]:
    """An app whose every hook refuses, and that counts the requests its hooks saw."""
    app = Roost(__file__, server_options=ServerOptions(**options))  # type: ignore[arg-type]
    seen: list[str] = []

    @app.before_request()
    def refuse(request: Request) -> Response:
        seen.append(request.method)
        return Response(401, {}, "no")

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    return app, seen


async def test_liveness_and_readiness_answer_before_the_app(serve) -> None:  # type: ignore[no-untyped-def]
    app, seen = app_with_hooks()
    app.add_cors(["https://example.com"])
    async with serve(app) as server:
        live = await request(server.port, "GET", "/livez")
        assert (live.status, live.json()) == (200, {"status": "live"})
        assert live.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in live.headers
        ready = await request(server.port, "GET", "/readyz?verbose=1")
        assert (ready.status, ready.json()) == (200, {"status": "ready"})
        head = await request(server.port, "HEAD", "/readyz")
        assert (head.status, head.body) == (200, b"")
        post = await request(server.port, "POST", "/livez", body=b"x")
        assert (post.status, post.headers["allow"]) == (405, "GET, HEAD")
        assert seen == []  # no hook ran for them
        assert (await request(server.port, "GET", "/hello")).status == 401
        assert len(seen) == 1


async def test_paths_can_be_moved_or_switched_off(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(
        __file__, server_options=ServerOptions(liveness_path=None, readiness_path="/-/ready")
    )

    @app.get("/livez")
    def mine() -> str:
        return "the app's own"

    async with serve(app) as server:
        assert (await request(server.port, "GET", "/livez")).body == b"the app's own"
        assert (await request(server.port, "GET", "/readyz")).status == 404
        assert (await request(server.port, "GET", "/-/ready")).json() == {"status": "ready"}


async def test_not_ready_until_the_startup_handlers_have_run() -> None:
    app = Roost(__file__)
    release = asyncio.Event()

    @app.startup_handler
    async def warm_up() -> None:
        await release.wait()

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    starting = asyncio.create_task(app.create_server(sock=sock))
    try:
        reply = await answering(port, "/readyz")
        assert (reply.status, reply.json()) == (503, {"status": "starting"})
        assert (await request(port, "GET", "/livez")).status == 200
        release.set()
        await starting
        assert (await request(port, "GET", "/readyz")).status == 200
    finally:
        release.set()
        await starting
        await app.shutdown()


async def test_draining_is_unready_and_serves_the_rest(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text(await websocket.receive_text())

    async with serve(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        server.drain()
        writer.write(request_bytes("GET", "/readyz"))
        reply = await read_response(reader)
        assert (reply.status, json.loads(reply.body)) == (503, {"status": "draining"})
        assert "close" not in reply.headers.get("connection", "")  # still served
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            await client.send("still served")
            assert await asyncio.wait_for(client.recv(), seconds(5)) == "still served"
        writer.write(request_bytes("GET", "/livez"))
        assert (await read_response(reader)).status == 200
        writer.close()
    assert server.readiness == "draining"


def test_the_first_stop_request_turns_readiness_at_once() -> None:
    """The callback runs inside the signal's own callback, before serve() wakes up to close
    connections; only the first request counts."""

    async def main() -> list[str]:
        requests = StopRequests()
        calls: list[str] = []
        requests.on_stop(lambda: calls.append("drain"))
        requests.stop(1001, "SIGTERM")
        calls.append("after stop")
        requests.stop(1012, "again")
        return calls

    assert asyncio.run(main()) == ["drain", "after stop"]

    async def late() -> list[str]:
        requests = StopRequests()
        requests.stop(1001, "SIGTERM")  # before the server existed
        calls: list[str] = []
        requests.on_stop(lambda: calls.append("drain"))
        return calls

    assert asyncio.run(late()) == ["drain"]


async def keep_alive_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, dict[str, object]]:
    writer.write(request_bytes("GET", path))
    reply = await read_response(reader, timeout=seconds(10))
    return reply.status, json.loads(reply.body)


async def test_sigterm_with_a_drain_delay_reports_unready_then_closes() -> None:
    delay = seconds(4)  # long enough for the checks below, on a slow machine too
    server = await ClusterServer("--drain-delay", f"{delay:g}").ready()
    try:
        ws, _ = await server.client()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await keep_alive_get(reader, writer, "/readyz") == (200, {"status": "ready"})
        server.proc.send_signal(signal.SIGTERM)

        async def unready() -> bool:
            return (await keep_alive_get(reader, writer, "/readyz"))[0] == 503

        await eventually(unready, what="readiness 503")
        # Unready, yet everything else is served: the open WebSocket, a new connection,
        # a new WebSocket, HTTP on the same keep-alive connection.
        assert ws.state is websockets.State.OPEN
        await ws.send(json.dumps({"op": "join", "room": "r"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), seconds(10))) == {"rooms": ["r"]}
        late, _ = await server.client()
        status, body = await keep_alive_get(reader, writer, "/health")
        assert status == 200 and body["ok"] is True
        # Then the drain: 1001 for both.
        for client in (ws, late):
            await asyncio.wait_for(client.wait_closed(), seconds(30))
            assert client.close_code == 1001
        assert await server.wait() == 0
        writer.close()
    finally:
        await server.stop()
    assert f"draining: not ready; closing connections in {delay:g} s" in server.log()


async def test_every_worker_turns_unready() -> None:
    server = await ClusterServer("--processes", "2", "--drain-delay", "60").ready()
    try:
        # One keep-alive connection per worker, told apart by the pid /health reports.
        by_pid: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

        async def one() -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            _, body = await keep_alive_get(reader, writer, "/health")
            return int(str(body["pid"])), reader, writer

        for _ in range(40):  # at the same time, so that both workers' accept loops wake
            for pid, reader, writer in await asyncio.gather(*(one() for _ in range(10))):
                if pid in by_pid or len(by_pid) == 2:
                    writer.close()
                else:
                    by_pid[pid] = (reader, writer)
            if len(by_pid) == 2:
                break
        assert len(by_pid) == 2
        server.proc.send_signal(signal.SIGTERM)

        async def turns(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def unready() -> bool:
                return await keep_alive_get(reader, writer, "/readyz") == (
                    503,
                    {"status": "draining"},
                )

            await eventually(unready, what="readiness 503")
            # ... while the worker still serves the app.
            assert (await keep_alive_get(reader, writer, "/health"))[0] == 200

        await asyncio.gather(*(turns(*conn) for conn in by_pid.values()))
        # The drain delay would go on for a minute: a second SIGTERM ends it.
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait(timeout=seconds(15)) == 128 + signal.SIGTERM
        for _, writer in by_pid.values():
            writer.close()
    finally:
        await server.stop()


async def test_a_second_sigterm_during_the_drain_delay_exits_now() -> None:
    server = await ClusterServer("--drain-delay", "60").ready()
    try:
        ws, _ = await server.client()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        server.proc.send_signal(signal.SIGTERM)

        async def unready() -> bool:
            return (await keep_alive_get(reader, writer, "/readyz"))[0] == 503

        await eventually(unready, what="readiness 503")
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait(timeout=seconds(15)) == 128 + signal.SIGTERM  # not 60 s
        await asyncio.wait_for(ws.wait_closed(), seconds(10))
        assert ws.close_code == 1006  # dropped, no close frame
        writer.close()
    finally:
        await server.stop()
