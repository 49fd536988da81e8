"""The commands of README.md and docs/http.md, run as written (on a free port instead of 8080)."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.timing import seconds

from .harness import HERE, server

VENV_BIN = os.path.dirname(__import__("sys").executable)


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=seconds(3)) as r:
        return json.loads(r.read())


@pytest.mark.parametrize(
    "cmd",
    [
        [os.path.join(VENV_BIN, "roost"), "cliapp:app", "--port", "{port}", "--processes", "2"],
        [
            os.path.join(VENV_BIN, "python"),
            "-m",
            "roost",
            "cliapp:app",
            "--port",
            "{port}",
            "--processes",
            "2",
        ],
    ],
    ids=["roost-cli", "python-m-roost"],
)
def test_readme_processes_flag(cmd):
    """README: `roost module:app --port 8080 --processes 2`. Expected: two workers serve."""
    with server(cmd=cmd) as proc:
        pids = {_health(proc.port)["pid"] for _ in range(40)}
        assert proc.poll() is None
        assert len(pids) >= 1


def test_http_md_broker_flag():
    """docs/http.md: `roost module:app --host 127.0.0.1 --port 8080 [--broker redis://...]`.
    Expected: the flag is accepted (an unreachable Redis only pauses cross-server delivery)."""
    cmd = [
        os.path.join(VENV_BIN, "roost"),
        "cliapp:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--broker",
        "redis://127.0.0.1:1/0",
    ]
    with server(cmd=cmd) as proc:
        assert _health(proc.port)["ok"] is True


def test_app_start_processes_flag_shuts_down_quietly():
    """`python app.py --processes 2` then SIGTERM: a graceful shutdown should not log errors."""
    import signal

    cmd = [
        os.path.join(VENV_BIN, "python"),
        os.path.join(HERE, "apps", "cliapp.py"),
        "--port",
        "{port}",
        "--processes",
        "2",
    ]
    with server(cmd=cmd) as proc:
        _health(proc.port)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=seconds(20))
    assert proc.returncode == 0
    assert b"ERROR" not in err, err.decode(errors="replace")
