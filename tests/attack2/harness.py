"""Servers in their own processes on free ports, and raw-socket helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from tests.timing import seconds

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable
ROOST = [PY, "-m", "roost"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: str) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + seconds(timeout)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=seconds(0.5)):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def serve(
    args: list[str], tmp_path: os.PathLike[str], env: dict[str, str] | None = None
) -> Iterator[Served]:
    """Run ``args`` (``{port}`` replaced by a free port) in APPS; stderr and stdout go to a
    file. SIGTERM at the end, SIGKILL if it lingers."""
    port = free_port()
    log = os.path.join(os.fspath(tmp_path), f"server-{port}.log")
    cmd = [a.replace("{port}", str(port)) for a in args]
    e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=APPS, env=e, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_listening(port, proc, 15)
        time.sleep(0.2)
        yield Served(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(seconds(15))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``; everything read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(reply: bytes) -> int:
    return int(reply.split(b"\r\n", 1)[0].split()[1]) if reply else 0


def body_of(reply: bytes) -> bytes:
    return reply.partition(b"\r\n\r\n")[2]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
