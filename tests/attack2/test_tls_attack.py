"""TLS from the outside: connections that never finish their handshake."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.timing import seconds
from tests.tls_certs import make_certs

from .harness import PY, rss_kib, serve


def _abort_before_hello(port: int, count: int) -> None:
    """Open ``count`` TCP connections to the TLS port at once, then close them all before
    any ClientHello."""
    socks = [
        socket.create_connection(("127.0.0.1", port), timeout=seconds(3)) for _ in range(count)
    ]
    time.sleep(0.5)
    for s in socks:
        s.close()
    time.sleep(0.5)


@pytest.mark.soak
@pytest.mark.xfail(
    strict=True,
    reason="known: RSS stays 20-40 MiB higher after thousands of TLS connections closed before "
    "their ClientHello (fds and Python objects come back); not yet explained",
)
def test_connections_closed_before_client_hello_leave_nothing_behind(tmp_path: Path) -> None:
    """docs/deployment.md#tls: a failed handshake "leaves nothing behind". A client that
    connects and goes away before its ClientHello must not cost memory that stays.
    Seen: RSS keeps growing, round after round of 500 at a time, well past make soak's 16 MiB
    bound (plain HTTP connections treated the same way stay flat)."""
    certs = make_certs(tmp_path)
    cmd = [
        PY,
        "log_target.py",
        "--port",
        "{port}",
        "--log-level",
        "WARNING",
        "--ssl-certfile",
        str(certs.server_cert),
        "--ssl-keyfile",
        str(certs.server_key),
    ]
    with serve(cmd, tmp_path) as server:
        for _ in range(3):  # warm up, as make soak does
            _abort_before_hello(server.port, 500)
        warm = rss_kib(server.pid)
        for _ in range(10):
            _abort_before_hello(server.port, 500)
        time.sleep(1)
        grown_mib = (rss_kib(server.pid) - warm) / 1024
        assert server.proc.poll() is None
    # make soak's bound for plain connections (docs/deployment.md#memory)
    assert grown_mib < 16, f"RSS grew {grown_mib:.1f} MiB over the warm level (5,000 aborted)"
