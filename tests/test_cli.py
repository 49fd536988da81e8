"""The command line: ``python -m roost module:app``, and ``--reload`` restarting with 1012."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import websockets

from tests.integration.guide_runner import ROOT, free_port

APP = """
from roost import Roost

app = Roost(__file__)

@app.websocket("/ws")
async def ws(websocket):
    await websocket.send_text("{greeting}")
    while True:
        await websocket.receive()
"""


async def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert proc.poll() is None, "the server exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise TimeoutError("the server did not start")


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "roost", *args], cwd=cwd, env=env)


async def test_serves_module_app_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = start(["examples.chat.app:app", "--port", str(port)], ROOT)
    try:
        await wait_listening(port, proc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_bad_targets_fail_clearly(tmp_path: Path) -> None:
    for target, message in [
        ("nomodule:app", b"cannot import"),
        ("examples.chat.app:nothing", b"has no attribute"),
        ("examples.chat.app", b"module:attribute"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "roost", target],
            cwd=ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode != 0
        assert message in done.stderr


async def test_reload_restarts_with_1012(tmp_path: Path) -> None:
    module = tmp_path / "reloadable.py"
    module.write_text(textwrap.dedent(APP.format(greeting="version 1")))
    port = free_port()
    proc = start(["reloadable:app", "--port", str(port), "--reload"], tmp_path)
    try:
        await wait_listening(port, proc)
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        assert await ws.recv() == "version 1"
        module.write_text(textwrap.dedent(APP.format(greeting="version 2")))
        await asyncio.wait_for(ws.wait_closed(), 15)
        assert ws.close_code == 1012
        for _ in range(300):
            try:
                async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as again:
                    assert await again.recv() == "version 2"
                    break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the app did not come back")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
