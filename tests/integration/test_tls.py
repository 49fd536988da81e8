"""TLS: https:// and wss:// with a certificate the test makes; plain HTTP and broken handshakes
on the TLS port are refused and leave nothing behind; client certificates."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import websockets

from roost import Roost, ServerOptions, WebSocketDisconnect
from roost.server.http import HttpConnection
from roost.server.tls import server_context
from tests.integration.cluster import roost_command
from tests.integration.guide_runner import free_port
from tests.timing import eventually, seconds
from tests.tls_certs import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def echo_app(**options: object) -> Roost:
    app = Roost(__file__, server_options=ServerOptions(**options))  # type: ignore[arg-type]

    @app.websocket("/echo")
    async def echo(websocket):  # type: ignore[no-untyped-def]
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    @app.get("/hello")
    def hello():  # type: ignore[no-untyped-def]
        return {"hello": "tls"}

    return app


async def https_get(port: int, context: ssl.SSLContext, path: str = "/hello") -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    reply = await asyncio.wait_for(reader.read(), seconds(10))
    writer.close()
    return reply


async def test_wss_and_https(certs: Certs) -> None:
    app = echo_app()
    context = server_context(str(certs.server_cert), str(certs.server_key))
    server = await app.create_server("127.0.0.1", 0, ssl=context)
    try:
        reply = await https_get(server.port, certs.client_context())
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert reply.endswith(b'{"hello":"tls"}')
        url = f"wss://127.0.0.1:{server.port}/echo"
        async with websockets.connect(url, ssl=certs.client_context()) as ws:
            for text in ("one", "two" * 10_000):
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), seconds(10)) == text
            assert ws.transport.get_extra_info("ssl_object").selected_alpn_protocol() is None
    finally:
        await app.shutdown()


async def test_alpn_says_http_1_1(certs: Certs) -> None:
    app = echo_app()
    server = await app.create_server(
        "127.0.0.1", 0, ssl=server_context(str(certs.server_cert), str(certs.server_key))
    )
    try:
        context = certs.client_context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=context, server_hostname="127.0.0.1"
        )
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.close()
    finally:
        await app.shutdown()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before it closed (a reset counts as closed)."""
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), seconds(10)):
            data += chunk
    except ConnectionResetError:
        pass
    return data


async def test_plain_http_to_the_tls_port_is_refused_cleanly(
    certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = echo_app()
    server = await app.create_server(
        "127.0.0.1", 0, ssl=server_context(str(certs.server_cert), str(certs.server_key))
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await read_until_closed(reader)
        writer.close()
        assert b"HTTP/1.1 200" not in reply  # no plain-text answer, only maybe a TLS alert
        assert not reply or reply[0] == 0x15  # a TLS alert record, or nothing
        assert not server.connections and server.admitted == 0
        # The server is unaffected.
        assert (await https_get(server.port, certs.client_context())).startswith(b"HTTP/1.1 200")
    finally:
        await app.shutdown()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, [r.getMessage() for r in problems]


async def bad_handshake(port: int, kind: str, certs: Certs) -> None:
    """One connection whose TLS handshake fails in the way ``kind`` names."""
    if kind in ("plain", "garbage", "hello-then-close"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if kind == "plain":
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        elif kind == "garbage":
            writer.write(os.urandom(600))
        else:  # the first bytes of a ClientHello record, then nothing more
            writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(32))
            writer.write_eof()
        await read_until_closed(reader)
        writer.close()
        return
    if kind == "untrusted":  # the client does not trust the server's certificate
        context = ssl.create_default_context(cafile=str(certs.other_ca))
    else:  # "no-client-cert": the server requires one
        context = certs.client_context()
    reply = b""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await read_until_closed(reader)
        writer.close()
    except (ssl.SSLError, ConnectionError):
        pass
    assert not reply, reply


def live_types() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


async def test_failed_handshakes_leave_nothing_behind(certs: Certs) -> None:
    # A handshake that stalls is cut at 2 s, well before a client's read gives up.
    app = echo_app(handshake_timeout=2.0)
    context = server_context(str(certs.server_cert), str(certs.server_key), ca_certs=str(certs.ca))
    server = await app.create_server("127.0.0.1", 0, ssl=context)
    kinds = ["plain", "garbage", "hello-then-close", "untrusted", "no-client-cert"]

    async def round_of(count: int) -> None:
        for _ in range(count):
            await asyncio.gather(*(bad_handshake(server.port, kind, certs) for kind in kinds))

    def settled() -> bool:
        return not server.connections and server.admitted == 0

    try:
        await round_of(10)  # warm up: caches, the loop's free lists
        await eventually(settled, what="every connection gone")
        before = live_types()
        await round_of(40)  # 200 failed handshakes
        await eventually(settled, what="every connection gone")
        after = live_types()
        grown = {name: after[name] - before[name] for name in after if after[name] > before[name]}
        assert not {name: n for name, n in grown.items() if n >= 40}, grown
        assert after[HttpConnection.__qualname__] == 0
        # A client with a certificate still gets through.
        reply = await https_get(server.port, certs.client_context(with_cert=True))
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        await app.shutdown()


async def test_a_silent_client_is_dropped_after_handshake_timeout(certs: Certs) -> None:
    app = echo_app(handshake_timeout=0.3)
    server = await app.create_server(
        "127.0.0.1", 0, ssl=server_context(str(certs.server_cert), str(certs.server_key))
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await read_until_closed(reader) == b""  # closed by the server, within 10 s
        writer.close()
    finally:
        await app.shutdown()


async def test_client_certificates(certs: Certs) -> None:
    app = echo_app()
    context = server_context(str(certs.server_cert), str(certs.server_key), ca_certs=str(certs.ca))
    server = await app.create_server("127.0.0.1", 0, ssl=context)
    try:
        url = f"wss://127.0.0.1:{server.port}/echo"
        async with websockets.connect(url, ssl=certs.client_context(with_cert=True)) as ws:
            await ws.send("with a certificate")
            assert await asyncio.wait_for(ws.recv(), seconds(10)) == "with a certificate"
        with pytest.raises((ssl.SSLError, ConnectionError, websockets.InvalidMessage)):
            async with websockets.connect(url, ssl=certs.client_context()) as ws:
                await ws.recv()
    finally:
        await app.shutdown()


APP = """
import os
from roost import Roost

app = Roost(__file__)


@app.websocket("/ws")
async def ws(websocket):
    await websocket.send_text(str(os.getpid()))
    await websocket.receive_text()


@app.get("/hello")
def hello():
    return "hello"


if __name__ == "__main__":
    app.start(port=int(os.environ["PORT"]), ssl_certfile=os.environ.get("CERT"),
              ssl_keyfile=os.environ.get("KEY"))
"""


async def wait_tls(port: int, proc: subprocess.Popen[bytes], certs: Certs) -> None:
    reply = b""

    async def answered() -> bool:
        nonlocal reply
        assert proc.poll() is None, "the server exited"
        try:
            reply = await https_get(port, certs.client_context())
        except OSError:
            return False
        return True

    await eventually(answered, 15, "an HTTPS answer")
    assert reply.startswith(b"HTTP/1.1 200"), reply


@pytest.mark.parametrize(
    "entry",
    ["app.start() arguments", "roost flags", "roost --processes 2", "environment"],
)
async def test_every_entry_point_serves_tls(entry: str, certs: Certs, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    tls = ["--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key)]
    if entry == "app.start() arguments":
        env |= {"CERT": str(certs.server_cert), "KEY": str(certs.server_key)}
        command = [sys.executable, "app.py"]
    elif entry == "roost flags":
        command = [*roost_command(), "app:app", "--port", str(port), *tls]
    elif entry == "roost --processes 2":
        command = [*roost_command(), "app:app", "--port", str(port), "--processes", "2", *tls]
    else:
        env |= {
            "ROOST_SSL_CERTFILE": str(certs.server_cert),
            "ROOST_SSL_KEYFILE": str(certs.server_key),
        }
        command = [*roost_command(), "app:app", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        await wait_tls(port, proc, certs)
        pids = set()
        for _ in range(50 if "processes" in entry else 1):
            async with websockets.connect(
                f"wss://127.0.0.1:{port}/ws", ssl=certs.client_context()
            ) as ws:
                pids.add(await asyncio.wait_for(ws.recv(), seconds(10)))
            if "processes" not in entry or len(pids) == 2:
                break
        assert len(pids) == (2 if "processes" in entry else 1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, seconds(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert b"Traceback" not in stderr, stderr.decode()
    assert f"roost listening on https://127.0.0.1:{port}".encode() in stderr


@pytest.mark.parametrize(
    ("flags", "status", "message"),
    [
        (["--ssl-certfile", "/nonexistent.pem"], 2, "cannot read '/nonexistent.pem'"),
        (["--ssl-keyfile", "{key}"], 2, "--ssl-keyfile needs --ssl-certfile"),
        (
            ["--ssl-certfile", "{cert}", "--ssl-keyfile", "{client_key}"],
            1,
            "roost: --ssl-certfile: cannot load the certificate",
        ),
    ],
)
def test_bad_tls_settings_stop_with_a_message(
    flags: list[str], status: int, message: str, certs: Certs, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    paths = {"key": certs.server_key, "cert": certs.server_cert, "client_key": certs.client_key}
    args = [flag.format(**paths) for flag in flags]
    done = subprocess.run(
        [*roost_command(), "app:app", "--port", str(free_port()), *args],
        cwd=tmp_path,
        capture_output=True,
        timeout=seconds(30),
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert message.encode() in done.stderr
    assert b"Traceback" not in done.stderr
