"""The session log (one line per WebSocket session end), the HTTP access log (common log
format), the JSON log format, and their switches."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from roost import Roost, StreamingResponse, WebSocketDisconnect
from tests.http_client import answering, request
from tests.integration.cluster import roost_command
from tests.integration.guide_runner import free_port
from tests.timing import eventually, seconds


def session_app() -> Roost:
    app = Roost(__file__)

    @app.websocket("/echo/:room")
    async def echo(websocket):  # type: ignore[no-untyped-def]
        try:
            while True:
                text = await websocket.receive_text()
                if text == "bye":
                    return  # the server closes, 1000
                if text == "kick":
                    await websocket.close(4000, "kicked")
                    return
                await websocket.send_text(text)
        except WebSocketDisconnect:
            pass

    @echo.on_connect
    def hello(websocket):  # type: ignore[no-untyped-def]
        return websocket.id

    return app


@pytest.fixture
def session_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="roost.session")
    yield caplog


async def ended(caplog: pytest.LogCaptureFixture, conn_id: str) -> logging.LogRecord:
    def lines() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "roost.session" and getattr(r, "id", None) == conn_id
        ]

    await eventually(lambda: bool(lines()), what="the session line")
    (line,) = lines()
    return line


@pytest.mark.parametrize(
    ("ending", "code", "closed_by"),
    [
        ("client closes", 1000, "client"),
        ("handler returns", 1000, "server"),
        ("server closes with 4000", 4000, "server"),
        ("client drops the TCP connection", 1006, "client"),
    ],
)
async def test_one_line_per_session_end(
    serve,  # type: ignore[no-untyped-def]
    session_records: pytest.LogCaptureFixture,
    ending: str,
    code: int,
    closed_by: str,
) -> None:
    async with serve(session_app()) as server:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/echo/lobby")
        conn_id = await ws.recv()
        local = ws.transport.get_extra_info("sockname")
        for text in ("a", "b", "c"):
            await ws.send(text)
            assert await ws.recv() == text
        if ending == "client closes":
            await ws.close()
        elif ending == "handler returns":
            await ws.send("bye")
        elif ending == "server closes with 4000":
            await ws.send("kick")
        else:
            ws.transport.abort()
        await ws.wait_closed()
        record = await ended(session_records, str(conn_id))
    sent_in = 3 if ending in ("client closes", "client drops the TCP connection") else 4
    fields = {
        key: getattr(record, key)
        for key in ("endpoint", "client", "messages_in", "messages_out", "close_code", "closed_by")
    }
    assert fields == {
        "endpoint": "/echo/:room",
        "client": f"127.0.0.1:{local[1]}",
        "messages_in": sent_in,
        "messages_out": 4,  # the greeting and three echoes
        "close_code": code,
        "closed_by": closed_by,
    }
    assert 0 < record.duration < 60  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"session ended /echo/:room id={conn_id} client=127.0.0.1:{local[1]} "
        f"duration={record.duration:.3f}s in={sent_in} out=4 code={code} "  # type: ignore[attr-defined]
        f"closed_by={closed_by}"
    )


async def test_broadcasts_count_as_messages_out(serve, session_records) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.websocket("/room")
    async def room(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text(websocket.id)
        try:
            while True:
                await websocket.broadcast(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    async with serve(app) as server:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/room")
        conn_id = await ws.recv()
        for text in ("x", "y"):
            await ws.send(text)
            assert await ws.recv() == text
        await ws.close()
        record = await ended(session_records, str(conn_id))
    assert (record.messages_in, record.messages_out) == (2, 3)  # type: ignore[attr-defined]


async def test_no_session_line_when_the_logger_is_off(
    serve,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("roost.session").setLevel(logging.WARNING)
    try:
        async with serve(session_app()) as server:
            ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/echo/x")
            await ws.recv()
            await ws.close()
    finally:
        logging.getLogger("roost.session").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name == "roost.session"]


def access_app() -> Roost:
    app = session_app()

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"ab", b"cde"]))

    return app


CLF = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(.*)" (\d{3}) (\S+)$'
)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    lines = []
    for record in caplog.records:
        if record.name == "roost.access":
            match = CLF.match(record.getMessage())
            assert match, record.getMessage()
            lines.append(match.groups())
    return lines


async def test_access_log_in_common_log_format(serve, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="roost.access")
    async with serve(access_app()) as server:
        assert server.access_log
        port = server.port
        await request(port, "GET", "/hello?x=1")
        await request(port, "HEAD", "/hello")
        await request(port, "GET", "/missing")
        await request(port, "GET", "/stream")
        await request(port, "GET", "/readyz")
        async with websockets.connect(f"ws://127.0.0.1:{port}/echo/a") as ws:
            await ws.recv()
        # A quote or a backslash in the target cannot end the request line early (httptools
        # refuses control characters and other bytes that are not printable ASCII).
        await request(port, "GET", '/hello?q="x"\\')
        await request(port, "GET", "/hello?q=\x1b[31m")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NONSENSE\r\n\r\n")
        await reader.read()
        writer.close()
    assert access_lines(caplog) == [
        ("GET /hello?x=1 HTTP/1.1", "200", "5"),
        ("HEAD /hello HTTP/1.1", "200", "-"),
        ("GET /missing HTTP/1.1", "404", "9"),
        ("GET /stream HTTP/1.1", "200", "5"),
        ("GET /readyz HTTP/1.1", "200", "18"),
        ("GET /echo/a HTTP/1.1", "101", "-"),
        ('GET /hello?q=\\"x\\"\\\\ HTTP/1.1', "200", "5"),
        ("-", "400", "49"),
        ("-", "400", "19"),
    ]
    record = next(r for r in caplog.records if r.name == "roost.access")
    assert (record.method, record.target, record.status, record.bytes) == (  # type: ignore[attr-defined]
        "GET",
        "/hello?x=1",
        200,
        5,
    )


async def test_no_access_log_when_the_logger_is_off(
    serve, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    logging.getLogger("roost.access").setLevel(logging.WARNING)
    try:
        async with serve(access_app()) as server:
            assert not server.access_log
            await request(server.port, "GET", "/hello")
    finally:
        logging.getLogger("roost.access").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name == "roost.access"]


APP = """
from roost import Roost

app = Roost(__file__)


@app.websocket("/ws")
async def ws(websocket):
    await websocket.send_text(websocket.id)
    await websocket.receive_text()


@app.get("/hello")
def hello():
    return "hello"
"""


async def run_and_collect(
    flags: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> str:
    """Serve the app with ``flags``, make one HTTP request and one WebSocket session, stop it;
    its stderr."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    proc = subprocess.Popen(
        [*roost_command(), "app:app", "--port", str(port), *flags],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
    )
    try:
        reply = await answering(port, "/hello", exited=lambda: proc.poll() is not None)
        assert reply.status == 200
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            conn_id = await ws.recv()
            await ws.send("done")
            await ws.wait_closed()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, seconds(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    text = stderr.decode()
    assert "Traceback" not in text, text
    assert str(conn_id) in text or "--no-session-log" in flags or "ROOST_SESSION_LOG" in (env or {})
    return text


async def test_json_format_from_the_command_line(tmp_path: Path) -> None:
    text = await run_and_collect(["--log-format", "json", "--access-log"], tmp_path)
    records = [json.loads(line) for line in text.splitlines()]
    by_logger: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_logger.setdefault(str(record["logger"]), []).append(record)
    (session,) = by_logger["roost.session"]
    assert session["endpoint"] == "/ws" and session["closed_by"] == "server"
    assert (session["messages_in"], session["messages_out"], session["close_code"]) == (1, 1, 1000)
    access = by_logger["roost.access"]
    assert [(a["target"], a["status"]) for a in access] == [("/hello", 200), ("/ws", 101)]
    assert any("listening on http://" in str(r["message"]) for r in by_logger["roost"])


async def test_text_access_lines_are_plain_common_log_format(tmp_path: Path) -> None:
    text = await run_and_collect(["--access-log", "--no-session-log"], tmp_path)
    lines = text.splitlines()
    access = [line for line in lines if CLF.match(line)]
    assert [CLF.match(line).groups()[:2] for line in access] == [  # type: ignore[union-attr]
        ("GET /hello HTTP/1.1", "200"),
        ("GET /ws HTTP/1.1", "101"),
    ]
    assert not [line for line in lines if "roost.session" in line]


async def test_defaults_session_log_on_access_log_off(tmp_path: Path) -> None:
    text = await run_and_collect([], tmp_path)
    assert "INFO roost.session: session ended /ws" in text
    assert not [line for line in text.splitlines() if CLF.match(line)]
    quiet = await run_and_collect([], tmp_path, env={"ROOST_SESSION_LOG": "0"})
    assert "roost.session" not in quiet
