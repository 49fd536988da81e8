"""The opt-in that lets ``import robyn`` reach roost: every import path a Robyn app uses,
the runner ``python -m roost.compat.robyn_shim app.py``, and the refusal to hide a real Robyn.
Each case runs in its own interpreter, so the import system of the tests is left alone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.guide_runner import ROOT, free_port
from tests.test_cli import wait_listening
from tests.timing import seconds


def run_python(code: str, cwd: Path, *extra_path: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([*(str(p) for p in extra_path), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )


def test_every_robyn_import_path_after_install(tmp_path: Path) -> None:
    done = run_python(
        """
        from roost.compat import robyn_shim
        try:
            import robyn
        except ImportError:
            pass
        else:
            raise SystemExit("robyn was importable before install()")
        robyn_shim.install()
        robyn_shim.install()  # idempotent
        from robyn import (ALLOW_CORS, AuthenticationHandler, BearerGetter, Headers, Request,
            Response, Robyn, SSEMessage, SSEResponse, StreamingResponse, SubRouter,
            WebSocketDisconnect, html, jsonify, serve_file, serve_html, status_codes)
        from robyn.responses import SSEMessage as M, StreamingResponse as S
        from robyn.authentication import AuthenticationHandler as A, BearerGetter as B
        from robyn.templating import JinjaTemplate, render
        from robyn.types import Body, Files, FormData, JsonBody, PathParams, RequestURL
        from robyn.robyn import Headers as H, HttpMethod, Identity, Request as R, Url
        from robyn.exceptions import HTTPException
        from robyn.openapi import OpenAPI, OpenAPIInfo
        from robyn.status_codes import HTTP_404_NOT_FOUND
        import robyn, roost.compat.robyn as compat, roost
        assert robyn is compat and R is roost.Request and H is roost.Headers
        assert A is roost.AuthenticationHandler and robyn.__name__ == "roost.compat.robyn"
        assert robyn.__spec__.name == "roost.compat.robyn"
        assert HTTP_404_NOT_FOUND == 404 and M is SSEMessage
        try:
            import robyn.nothing_here
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("a missing submodule was found")
        robyn_shim.uninstall()
        import sys
        assert "robyn" not in sys.modules and not robyn_shim.installed()
        print("ok")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def fake_robyn(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "robyn").mkdir(parents=True)
    (site / "robyn" / "__init__.py").write_text("REAL = True\n")
    return site


def test_install_refuses_when_a_real_robyn_is_importable(tmp_path: Path) -> None:
    site = fake_robyn(tmp_path)
    done = run_python(
        """
        from roost.compat import robyn_shim
        try:
            robyn_shim.install()
        except robyn_shim.RobynInstalled as exc:
            print(exc)
        import robyn
        assert robyn.REAL and not robyn_shim.installed()
        """,
        tmp_path,
        site,
    )
    assert done.returncode == 0, done.stderr
    assert "a real Robyn is installed" in done.stdout and "site/robyn" in done.stdout


def test_install_refuses_when_robyn_is_already_imported(tmp_path: Path) -> None:
    site = fake_robyn(tmp_path)
    done = run_python(
        """
        import sys
        import robyn
        sys.path[:] = [p for p in sys.path if not p.endswith("site")]
        from roost.compat import robyn_shim
        try:
            robyn_shim.install()
        except robyn_shim.RobynInstalled as exc:
            print(exc)
        """,
        tmp_path,
        site,
    )
    assert done.returncode == 0, done.stderr
    assert "a real Robyn is installed" in done.stdout


UNCHANGED_APP = """
from robyn import Robyn, Request, SSEMessage, SSEResponse
from robyn.authentication import AuthenticationHandler, BearerGetter

app = Robyn(__file__)

@app.get("/hello/:name")
def hello(request: Request):
    return {"hello": request.path_params["name"], "url": request.url.path}

if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
"""


async def test_the_runner_serves_an_unchanged_robyn_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(UNCHANGED_APP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROBYN_PORT": str(port)}
    command = [sys.executable, "-m", "roost.compat.robyn_shim", "app.py", "--log-level", "WARN"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env)
    try:
        await wait_listening(port, proc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hello/bruce HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), seconds(5))
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b'{"hello":"bruce","url":"/hello/bruce"}')
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=seconds(15)) == 0


def test_the_runner_refuses_next_to_a_real_robyn(tmp_path: Path) -> None:
    site = fake_robyn(tmp_path)
    (tmp_path / "app.py").write_text(UNCHANGED_APP)
    done = subprocess.run(
        [sys.executable, "-m", "roost.compat.robyn_shim", "app.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])},
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert done.returncode == 1
    assert "roost: a real Robyn is installed" in done.stderr


def test_the_runner_needs_an_app(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "roost.compat.robyn_shim"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert done.returncode == 2 and "usage:" in done.stdout


def test_plain_roost_does_not_import_the_compat_layer(tmp_path: Path) -> None:
    done = run_python(
        """
        import sys
        import roost, roost.testing, roost.cli
        names = ("jinja2", "robyn", "python_multipart")
        loaded = [m for m in sys.modules if m.startswith("roost.compat") or m in names]
        print(loaded)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
