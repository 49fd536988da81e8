"""Logs from the outside: what a request or a setting can make roost write."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.timing import seconds

from .harness import APPS, PY, ROOST, ROOT, exchange, serve, status_of

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def test_error_log_line_cannot_be_forged_through_the_path(tmp_path: Path) -> None:
    """With the default text format, a handler error is logged as "error while handling GET
    <path>" with the path percent-decoded: %0D%0A in the URL starts a new, forged log line.
    A request must not be able to write a line of its own into the log."""
    forged = "2026-01-01 00:00:00,000 CRITICAL roost: forged by the client"
    target = "/boom/a%0D%0A" + forged.replace(" ", "%20")
    with serve([PY, "log_target.py", "--port", "{port}"], tmp_path) as server:
        reply = exchange(
            server.port,
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
        )
        assert status_of(reply) == 500
    lines = server.log().splitlines()
    assert forged not in lines, "a client wrote its own line into the log"


def _run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run(
        [*ROOST, "log_target:app", "--port", "0", *args],
        cwd=APPS,
        env=e,
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )


def test_malformed_broker_url_does_not_print_its_password() -> None:
    """docs/deployment.md#logs: "Broker URLs in log lines and error messages show *** instead
    of their password". A URL with a typo in its IPv6 host prints the password in clear, both
    from --broker and from ROOST_BROKER (the Kubernetes Secret of the docs)."""
    url = "redis://:hunter2secret@[::1/0"
    by_flag = _run_cli(["--broker", url])
    by_env = _run_cli([], env={"ROOST_BROKER": url})
    for result in (by_flag, by_env):
        assert result.returncode != 0
        assert "hunter2secret" not in result.stderr + result.stdout, result.stderr


def test_broker_url_with_a_bad_port_is_a_usage_error() -> None:
    """README: a bad value stops with a message naming it and exit status 2. A broker URL
    whose port is not a number (or out of range) ends in a traceback with status 1."""
    for url in ("redis://:pw@127.0.0.1:notaport/0", "redis://:pw@127.0.0.1:99999/0"):
        result = _run_cli(["--broker", url])
        assert "Traceback" not in result.stderr, result.stderr[-300:]
        assert result.returncode == 2
