"""Every command line shown in README.md and docs/*.md that starts ``roost``,
``python -m roost`` or ``python app.py`` runs as written, in a directory holding the README's
app as ``app.py`` and, for the TLS commands, a certificate the test makes as ``cert.pem``,
``key.pem`` and ``ca.pem``; the server answers (over TLS where the command says so). Only the
port changes (8080 becomes a free port, and Redis's 6379 the port of a test redis-server,
started with the password the URL gives)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import websockets

from tests.integration.cluster import roost_command
from tests.integration.guide_runner import ROOT, free_port
from tests.redis_server import RedisServer
from tests.timing import seconds
from tests.tls_certs import make_certs

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STARTS = ("roost ", "python -m roost ", "python app.py")
SERVER_FLAGS = {
    "--host",
    "--port",
    "--processes",
    "--broker",
    "--log-level",
    "--reload",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--ssl-ca-certs",
    "--drain-delay",
    "--log-format",
    "--access-log",
    "--no-session-log",
    "--metrics",
}


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every matching line inside a fenced code block."""
    found = []
    for doc in DOCS:
        fenced = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced and line.startswith(STARTS):
                found.append((f"{doc.relative_to(ROOT)}:{number}", line))
    return found


def readme_app() -> str:
    """The README's app: its first python code block."""
    match = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert match is not None
    return match.group(1)


COMMANDS = documented_commands()


def test_the_docs_show_every_server_flag_and_entry_point() -> None:
    shown = {word for _, line in COMMANDS for word in shlex.split(line, comments=True)}
    assert shown >= SERVER_FLAGS
    assert {line.split()[0] for _, line in COMMANDS} == {"roost", "python"}
    assert any(line.startswith("python -m roost") for _, line in COMMANDS)
    assert any(line.startswith("python app.py") for _, line in COMMANDS)


async def answers(port: int, proc: subprocess.Popen[bytes], tls: ssl.SSLContext | None) -> None:
    """Wait until the server answers /health and greets a WebSocket client on /chat (over
    TLS with ``tls``, a client context)."""
    for _ in range(400):
        assert proc.poll() is None, "the server exited"
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None
            )
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), seconds(10))
        writer.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {"ok": True}
        break
    else:
        raise TimeoutError("the server did not start")
    scheme = "wss" if tls else "ws"
    async with websockets.connect(f"{scheme}://127.0.0.1:{port}/chat", ssl=tls) as ws:
        assert await asyncio.wait_for(ws.recv(), seconds(10)) == "Welcome!"


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[where for where, _ in COMMANDS])
async def test_documented_command_runs_as_written(where: str, line: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(readme_app())
    port = free_port()
    redis = None
    args = []
    words = shlex.split(line, comments=True)
    for word in words:
        if "6379" in word:
            if shutil.which("redis-server") is None:
                pytest.skip("redis-server is not installed")
            password = urlsplit(word).password
            redis = RedisServer(password=None if password is None else unquote(password))
            redis.start()
            await redis.ready()
            word = word.replace("6379", str(redis.port))
        args.append(str(port) if word == "8080" else word)
    assert str(port) in args, f"{where}: the command does not say its port"
    tls = None
    if "--ssl-certfile" in words:
        certs = make_certs(tmp_path)
        for name, made in [("cert.pem", certs.server_cert), ("key.pem", certs.server_key)]:
            made.rename(tmp_path / name)
        tls = certs.client_context(with_cert="--ssl-ca-certs" in words)
    head = roost_command() if args[0] == "roost" else [sys.executable]
    proc = subprocess.Popen(
        [*head, *args[1:]],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
    )
    try:
        await answers(port, proc, tls)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
        if redis is not None:
            redis.kill()
            shutil.rmtree(redis.dir, ignore_errors=True)
    assert b"Traceback" not in stderr, stderr.decode()
