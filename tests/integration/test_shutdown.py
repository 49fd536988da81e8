"""Graceful shutdown: pending handshakes get 503, open connections 1001, nothing sent is lost;
and what each signal does to a server process (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest
import websockets

from roost import Request, Roost, ServerOptions, SSEResponse, StreamingResponse
from tests.http_client import read_response
from tests.integration.cluster import ClusterServer
from tests.integration.guide_runner import ROOT, free_port
from tests.test_sse import read_chunk
from tests.timing import eventually, seconds

APPS = ROOT / "tests" / "integration" / "apps"


async def test_shutdown_flushes_then_closes_1001_and_runs_on_close(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    closed: list[str] = []
    sent = asyncio.Event()

    @app.websocket("/feed", ping_interval=None)
    async def feed(websocket):  # type: ignore[no-untyped-def]
        for i in range(500):
            await websocket.send_text(f"{i:04d}" + "x" * 1000)
        sent.set()
        while True:
            await websocket.receive()

    @feed.on_close
    async def gone(websocket):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)  # on_close may await; shutdown waits for it
        closed.append(websocket.id)

    async with serve(app) as server:
        port = server.port
        clients = [await websockets.connect(f"ws://127.0.0.1:{server.port}/feed") for _ in range(3)]
        await asyncio.wait_for(sent.wait(), seconds(5))
        # A handshake in progress: headers half sent when shutdown starts.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        await asyncio.sleep(0.05)
        shutdown = asyncio.create_task(app.shutdown())
        await asyncio.sleep(0.05)
        writer.write(
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 503")
        for ws in clients:
            received = [m async for m in ws]  # iterates until the close frame
            assert [m[:4] for m in received] == [f"{i:04d}" for i in range(500)]
            assert ws.close_code == 1001
        await asyncio.wait_for(shutdown, seconds(15))
        assert len(closed) == 3
        # The listener is closed: new connections are refused.
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            raise AssertionError("the server still accepts connections after shutdown")


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def test_shutdown_lets_running_http_handlers_answer() -> None:
    app = Roost(__file__)
    entered = asyncio.Event()
    finished: list[str] = []

    @app.post("/slow")
    async def slow(request: Request):  # type: ignore[no-untyped-def]
        entered.set()
        assert app.server is not None
        await app.server.wait_closing()
        await asyncio.sleep(0.2)  # the rest of the handler's work, after shutdown began
        finished.append(request.body.decode())
        return {"echo": request.body.decode()}

    server = await app.create_server("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post("/slow", b"payload"))
    await asyncio.wait_for(entered.wait(), seconds(5))
    await asyncio.wait_for(app.shutdown(), seconds(15))
    assert finished == ["payload"]  # shutdown waited for the handler
    reply = await read_response(reader, "POST")
    assert (reply.status, reply.json()) == (200, {"echo": "payload"})
    assert reply.headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
    writer.close()


async def test_sigterm_mid_request_still_answers() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(APPS / "slow_app.py"),
        "--port",
        str(port),
        "--log-level",
        "WARNING",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(300):
            assert proc.returncode is None, "the server exited"
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise TimeoutError("the server did not start")
        writer.write(post("/slow", b"in flight"))
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), seconds(10)) == b"handling\n"
        proc.send_signal(signal.SIGTERM)
        reply = await read_response(reader, "POST", timeout=seconds(15))
        assert (reply.status, reply.json()) == (200, {"echo": "in flight"})
        assert reply.headers["connection"] == "close"
        writer.close()
        assert await asyncio.wait_for(proc.wait(), seconds(15)) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_handshake_in_before_connect_at_shutdown_gets_503() -> None:
    app = Roost(__file__)
    entered = asyncio.Event()
    go_on = asyncio.Event()
    ran: list[str] = []

    @app.websocket("/ws")
    async def ws(websocket):  # type: ignore[no-untyped-def]
        ran.append("handler")

    @ws.on_connect
    async def hello(websocket):  # type: ignore[no-untyped-def]
        ran.append("on_connect")

    @ws.before_connect
    async def check(request: Request) -> None:
        entered.set()
        await go_on.wait()

    server = await app.create_server("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.wait_for(entered.wait(), seconds(5))
    shutdown = asyncio.create_task(app.shutdown())
    await asyncio.wait_for(server.wait_closing(), seconds(5))
    go_on.set()
    reply = await read_response(reader)
    assert (reply.status, reply.body) == (503, b"shutting down")
    await asyncio.wait_for(shutdown, seconds(15))
    assert ran == []
    assert await app.connections() == []
    writer.close()


async def test_streams_in_flight_end_at_shutdown() -> None:
    # SSE ends at once, cleanly, however long shutdown_timeout is.
    app = Roost(__file__, server_options=ServerOptions(shutdown_timeout=60))
    ended: list[str] = []

    @app.get("/events")
    async def events():  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            try:
                yield "first"
                await asyncio.Event().wait()  # an event stream with nothing more to say
            finally:
                ended.append("events")

        return SSEResponse(gen(), keep_alive=None)

    server = await app.create_server("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(5))
    assert await read_chunk(reader) == b"data: first\n\n"
    # The margin is generous: what matters is not waiting for shutdown_timeout (60 s).
    await asyncio.wait_for(app.shutdown(), seconds(20))
    assert ended == ["events"]
    assert await read_chunk(reader) == b""  # the end of the chunked body
    assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
    writer.close()


async def test_endless_plain_stream_is_cut_at_the_deadline() -> None:
    # A plain stream is given until shutdown_timeout, then cut: never ended as if whole.
    app = Roost(__file__, server_options=ServerOptions(shutdown_timeout=0.5))
    ended: list[str] = []

    @app.get("/download")
    async def download():  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            try:
                yield "part 1"
                await asyncio.Event().wait()
            finally:
                ended.append("download")

        return StreamingResponse(gen())

    server = await app.create_server("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(5))
    assert await read_chunk(reader) == b"part 1"
    await asyncio.wait_for(app.shutdown(), seconds(20))
    assert ended == ["download"]
    try:
        rest = await asyncio.wait_for(reader.read(), seconds(5))
    except ConnectionResetError:
        rest = b""
    assert b"0\r\n\r\n" not in rest  # no end of body: the client knows it is cut short
    writer.close()


async def test_shutdown_hears_the_close_of_a_client_whose_messages_wait() -> None:
    # The handler is behind (max_queue full, reading paused): roost must still read the
    # client's close frame, or the connection lingers until close_timeout and is dropped.
    app = Roost(__file__, server_options=ServerOptions(shutdown_timeout=60))
    gone = asyncio.Event()

    @app.websocket("/behind", max_queue=2, close_timeout=60, ping_interval=None)
    async def behind(websocket):  # type: ignore[no-untyped-def]
        await gone.wait()  # reads nothing

    @behind.on_close
    def ended(websocket):  # type: ignore[no-untyped-def]
        gone.set()

    server = await app.create_server("127.0.0.1", 0)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/behind") as ws:
        for i in range(3):
            await ws.send(f"message {i}")
        await eventually(
            lambda: any(channel.reading_paused for channel in server.channels),
            what="reading paused",
        )
        # The margin is generous: what matters is not waiting for close_timeout (60 s).
        await asyncio.wait_for(app.shutdown(), seconds(20))
        assert gone.is_set()
        await asyncio.wait_for(ws.wait_closed(), seconds(5))
        assert ws.close_code == 1001


# -- signals to a real server process (one process; --processes: test_scale_processes.py) --


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_stop_signal_during_the_shutdown_exits_now(sig: int) -> None:
    server = await ClusterServer().ready()
    try:
        lingering, _ = await server.client("/linger")
        other, _ = await server.client()
        server.proc.send_signal(sig)
        for ws in (lingering, other):
            await asyncio.wait_for(ws.wait_closed(), seconds(10))
            assert ws.close_code == 1001
        # The lingering client's on_close never ends: the shutdown waits for it (60 s) ...
        assert server.proc.poll() is None
        server.proc.send_signal(sig)  # ... until the second signal.
        assert await server.wait() == 128 + sig
        name = signal.Signals(sig).name
        assert f"second {name} during shutdown: exiting now" in server.log()
    finally:
        await server.stop(signal.SIGKILL)


async def test_sighup_closes_with_1012_and_exits_0() -> None:
    server = await ClusterServer().ready()
    ws, _ = await server.client()
    assert await server.stop(signal.SIGHUP) == 0
    await asyncio.wait_for(ws.wait_closed(), seconds(10))
    assert (ws.close_code, ws.close_reason) == (1012, "server restarting")


async def test_one_sigterm_waits_for_the_shutdown_and_exits_0() -> None:
    server = await ClusterServer().ready()
    ws, _ = await server.client()
    assert await server.stop(signal.SIGTERM) == 0
    await asyncio.wait_for(ws.wait_closed(), seconds(10))
    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
    assert "exiting now" not in server.log()


async def test_a_broker_that_never_stops_does_not_hold_the_shutdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import roost.app
    from roost.hub.broker import Broker, Deliver

    class StuckBroker(Broker):
        async def start(self, node_id: str, deliver: Deliver, sequenced: object = None) -> None:
            pass

        def publish(self, message: bytes) -> None:
            pass

        async def stop(self, node_id: str) -> None:
            await asyncio.Event().wait()

    monkeypatch.setattr(roost.app, "BROKER_STOP_TIMEOUT", 0.2)
    app = Roost(__file__, broker=StuckBroker())
    stopped: list[bool] = []
    app.shutdown_handler(lambda: stopped.append(True))
    await app.create_server("127.0.0.1", 0)
    await asyncio.wait_for(app.shutdown(), seconds(30))
    assert stopped == [True]  # the shutdown handlers still ran
    assert "the broker did not disconnect within" in caplog.text
