"""SIGTERM to `python app.py` while an upload is still arriving."""

from __future__ import annotations

import signal
import socket
import time

from .harness import status_of


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
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


def test_request_whose_body_is_arriving_at_sigterm_is_handled(target):
    """The headers and part of the body are in when SIGTERM comes; the rest follows 200 ms
    later. The request is in progress, so graceful shutdown should let it finish (200), as it
    does for a request whose handler is already running."""
    s = socket.create_connection(("127.0.0.1", target.port))
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    time.sleep(0.3)
    target.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    s.sendall(b"defghij")
    reply = _read_all(s, 5)
    s.close()
    assert status_of(reply) == 200, reply[:200]
    assert reply.endswith(b"abcdefghij")
