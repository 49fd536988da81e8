"""The command line: ``roost module:app``, ``python -m roost module:app`` and ``python app.py``
(``app.start()``) share one set of flags; bad values are clear errors; ``--reload`` restarts
with 1012 and its server does not outlive it. Every command the docs show is run by
tests/integration/test_documented_commands.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import websockets

from tests.integration.cluster import children, exited, listening, roost_command
from tests.integration.guide_runner import ROOT, free_port
from tests.redis_server import RedisServer
from tests.timing import seconds

APP = """
from roost import Roost

app = Roost(__file__)

@app.websocket("/ws")
async def ws(websocket):
    await websocket.send_text("{greeting}")
    while True:
        await websocket.receive()

if __name__ == "__main__":
    app.start()
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
        assert (await asyncio.wait_for(reader.read(), seconds(5))).startswith(b"HTTP/1.1 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=seconds(15)) == 0


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
            timeout=seconds(30),
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
        await asyncio.wait_for(ws.wait_closed(), seconds(15))
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
        assert proc.wait(timeout=seconds(15)) == 0


ENTRY_POINTS = {
    "roost": [*roost_command(), "app:app"],
    "python -m roost": [sys.executable, "-m", "roost", "app:app"],
    "python app.py": [sys.executable, "app.py"],
}
BAD = [
    (["--processes", "0"], {}, "argument --processes: invalid process count 0: must be at least 1"),
    (["--processes", "two"], {}, "argument --processes: invalid process count 'two'"),
    (["--port", "abc"], {}, "argument --port: invalid port 'abc'"),
    (["--port", "70000"], {}, "argument --port: invalid port 70000"),
    (["--log-level", "loud"], {}, "argument --log-level: invalid log level 'loud'"),
    (["--host", ""], {}, "argument --host: invalid host ''"),
    (["--broker", "http://cache:6379"], {}, "argument --broker: invalid broker URL"),
    (["--reload", "--processes", "2"], {}, "cannot be combined with --processes 2"),
    ([], {"ROOST_PORT": "abc"}, "ROOST_PORT: invalid port 'abc'"),
    ([], {"ROOST_PROCESSES": "0"}, "ROOST_PROCESSES: invalid process count 0"),
    ([], {"ROOST_LOG_LEVEL": "chatty"}, "ROOST_LOG_LEVEL: invalid log level 'chatty'"),
    ([], {"ROOST_BROKER": "cache:6379"}, "ROOST_BROKER: invalid broker URL 'cache:6379'"),
    (["--drain-delay", "-2"], {}, "argument --drain-delay: invalid duration '-2'"),
    (["--log-format", "xml"], {}, "argument --log-format: invalid log format 'xml'"),
    (["--ssl-certfile", "/no/cert.pem"], {}, "argument --ssl-certfile: cannot read"),
    ([], {"ROOST_SESSION_LOG": "perhaps"}, "ROOST_SESSION_LOG: invalid switch 'perhaps'"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_flags_and_settings_fail_clearly(entry: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(greeting="hi")))
    for flags, env, message in BAD:
        done = subprocess.run(
            [*ENTRY_POINTS[entry], *flags],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            timeout=seconds(30),
            check=False,
        )
        assert done.returncode == 2, (flags, env, done.stderr)
        assert message in done.stderr.decode(), (flags, env, done.stderr)


@pytest.mark.parametrize("entry", ["roost", "python -m roost"])
def test_roost_rejects_unknown_flags(entry: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(greeting="hi")))
    done = subprocess.run(
        [*ENTRY_POINTS[entry], "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        timeout=seconds(30),
        check=False,
    )
    assert done.returncode == 2
    assert b"unrecognized arguments: --workers 2" in done.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_port_in_use_is_a_clear_error(processes: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(greeting="hi")))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*roost_command(), "app:app", "--port", str(port), "--processes", processes],
            cwd=tmp_path,
            capture_output=True,
            timeout=seconds(30),
            check=False,
        )
    assert done.returncode == 1
    assert f"roost: cannot listen on 127.0.0.1:{port}: Address already in use".encode() in (
        done.stderr
    )
    assert b"Traceback" not in done.stderr


async def test_a_killed_reloader_takes_its_server_down(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(greeting="hi")))
    port = free_port()
    proc = subprocess.Popen(
        [*roost_command(), "app:app", "--port", str(port), "--reload"], cwd=tmp_path
    )
    try:
        await wait_listening(port, proc)
        (server,) = children(proc.pid)
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        assert await ws.recv() == "hi"
        proc.kill()
        await asyncio.wait_for(ws.wait_closed(), seconds(15))
        assert ws.close_code == 1001
        for _ in range(300):
            if exited(server):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the server outlived its reloader")
        assert not listening(port)
    finally:
        proc.kill()
        proc.wait()


FLAG_SETS = {
    "processes": ["--processes", "2", "--host", "127.0.0.1", "--log-level", "warning"],
    "reload": ["--reload"],
    "broker": ["--broker", "redis://127.0.0.1:{redis}/0"],
}


@pytest.mark.parametrize("flags", FLAG_SETS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
async def test_every_entry_point_takes_every_flag(entry: str, flags: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(greeting="hi")))
    redis = None
    args = FLAG_SETS[flags]
    if flags == "broker":
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        redis = RedisServer()
        redis.start()
        await redis.ready()
        args = [arg.format(redis=redis.port) for arg in args]
    port = free_port()
    proc = subprocess.Popen([*ENTRY_POINTS[entry], "--port", str(port), *args], cwd=tmp_path)
    try:
        await wait_listening(port, proc)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert await ws.recv() == "hi"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if redis is not None:
            redis.kill()
            shutil.rmtree(redis.dir, ignore_errors=True)
