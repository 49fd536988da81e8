"""examples/robyn_app end to end over real sockets: every method, auth, middlewares, the
SubRouter, SSE, upload, the template, the WebSocket; and the same app with Robyn's own
``from robyn import ...`` lines, run unchanged by ``python -m roost.compat.robyn_shim``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import websockets
from examples.robyn_app import app as example

from tests.http_client import request
from tests.integration.guide_runner import ROOT, free_port
from tests.robyn.test_forms import BOUNDARY, multipart
from tests.test_cli import wait_listening
from tests.timing import seconds

AUTH = {"Authorization": "Bearer batman-token"}
ROBIN = {"Authorization": "Bearer robin-token"}
JSON = {"Content-Type": "application/json"}


async def test_the_example_app(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(example.app) as server:
        port = server.port
        # auth and every method
        assert (await request(port, "POST", "/notes", headers=JSON, body=b"{}")).status == 401
        created = await request(
            port, "POST", "/notes", headers={**AUTH, **JSON}, body=b'{"text":"joker","tags":["a"]}'
        )
        assert created.status == 201
        assert created.json() == {"id": 1, "text": "joker", "tags": ["a"], "author": "batman"}
        assert created.headers["x-served-by"] == "notes"
        assert created.headers["x-content-type-options"] == "nosniff"
        assert (await request(port, "GET", "/notes/1")).json()["text"] == "joker"
        assert (await request(port, "GET", "/notes/abc")).status == 400  # route middleware
        put = await request(
            port, "PUT", "/notes/1", headers={**ROBIN, **JSON}, body=b'{"text":"riddler"}'
        )
        assert put.json()["text"] == "riddler"
        patched = await request(port, "PATCH", "/notes/1", headers=AUTH, body=b'{"tag":"b"}')
        assert patched.json()["tags"] == ["b"]
        head = await request(port, "HEAD", "/notes/1")
        assert (head.status, head.headers["x-exists"], head.body) == (200, "true", b"")
        options = await request(port, "OPTIONS", "/notes")
        assert options.headers["allow"] == "GET, POST, OPTIONS"
        assert len((await request(port, "GET", "/notes?tag=b")).json()) == 1  # type: ignore[arg-type]
        assert (await request(port, "GET", "/health")).json() == {"status": "ok"}
        # the template
        page = await request(port, "GET", "/")
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert b"<li>riddler</li>" in page.body
        # upload
        body = multipart(("caption", None, b"evidence"), ("file", "clue.txt", b"?" * 100))
        upload_headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        uploaded = await request(port, "POST", "/upload", headers=upload_headers, body=body)
        assert uploaded.json() == {"stored": ["clue.txt"], "caption": "evidence"}
        # the SubRouter and its own middleware
        assert (await request(port, "GET", "/admin/uploads", headers=ROBIN)).status == 403
        listed = await request(port, "GET", "/admin/uploads", headers=AUTH)
        assert listed.json() == {"clue.txt": 100}
        # SSE, sync and async
        events = await request(port, "GET", "/events?count=2")
        assert events.headers["content-type"] == "text/event-stream"
        assert events.body == (
            b'event: tick\nid: 0\ndata: {"tick":0,"notes":1}\n\n'
            b'event: tick\nid: 1\ndata: {"tick":1,"notes":1}\n\n'
        )
        assert (await request(port, "GET", "/events/async")).body == (
            b"data: async 0\n\ndata: async 1\n\n"
        )
        # CORS for the listed origin only
        cors = await request(port, "GET", "/stats", headers={"Origin": "http://localhost:3000"})
        assert cors.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert cors.headers["access-control-allow-credentials"] == "true"
        other = await request(port, "GET", "/stats", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # the WebSocket
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert await ws.recv() == "welcome to notes"
            await ws.send("count")
            assert await ws.recv() == "1"
            await ws.send("hi")
            assert await ws.recv() == "echo: hi"
        assert (await request(port, "DELETE", "/notes/1", headers=AUTH)).status == 204
        assert (await request(port, "GET", "/notes/1")).status == 404
        reset = await request(port, "POST", "/admin/reset", headers=AUTH)
        assert reset.json() == {"reset": True}


def as_robyn_source(source: str) -> str:
    """The example with Robyn's own import lines: the only lines that differ."""
    return re.sub(r"\broost\.compat\.robyn\b", "robyn", source)


def test_only_the_import_lines_name_roost() -> None:
    code = Path(example.__file__).read_text().split('"""', 2)[2]  # past the docstring
    changed = [
        line
        for line, original in zip(
            code.splitlines(), as_robyn_source(code).splitlines(), strict=True
        )
        if line != original
    ]
    assert changed and all(line.startswith("from roost.compat.robyn") for line in changed)
    assert "roost" not in as_robyn_source(code)


async def test_the_unchanged_robyn_app_runs_under_the_shim(tmp_path: Path) -> None:
    here = Path(example.__file__).parent
    (tmp_path / "app.py").write_text(as_robyn_source((here / "app.py").read_text()))
    shutil.copytree(here / "templates", tmp_path / "templates")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROBYN_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost.compat.robyn_shim", "app.py", "--disable-openapi"],
        cwd=tmp_path,
        env=env,
    )
    try:
        await wait_listening(port, proc)
        created = await request(
            port, "POST", "/notes", headers={**AUTH, **JSON}, body=b'{"text":"bane"}'
        )
        assert created.status == 201 and created.json()["author"] == "batman"  # type: ignore[index]
        assert b"<li>bane</li>" in (await request(port, "GET", "/")).body
        assert (await request(port, "GET", "/openapi.json")).status == 404
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert await ws.recv() == "welcome to notes"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=seconds(15)) == 0
