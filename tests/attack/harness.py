"""Run an app in a subprocess on a free port; raw-socket helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from tests.timing import seconds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}: {proc.stderr.read()!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=seconds(0.5)) as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                s.settimeout(2)
                if s.recv(100):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def server(
    app: str = "target.py",
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    cmd=None,
):
    port = free_port()
    e = dict(os.environ, ROOST_LOG_LEVEL="WARNING", **(env or {}))
    if cmd is None:
        cmd = [PY, os.path.join(HERE, "apps", app), "--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [c.replace("{port}", str(port)) for c in cmd]
    cmd += args or []
    proc = subprocess.Popen(
        cmd,
        env=e,
        cwd=os.path.join(HERE, "apps"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_port(port, proc)
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def raw(port: int, data: bytes, timeout: float = 3.0, until_close: bool = True) -> bytes:
    """Send bytes, read until the server closes or timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(reply: bytes) -> int:
    if not reply:
        return 0
    return int(reply.split(b"\r\n", 1)[0].split()[1])


def statuses(reply: bytes) -> list[int]:
    import re

    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3})", reply)]


def ws_handshake(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()
