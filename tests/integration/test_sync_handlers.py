"""Sync user code runs in a thread pool: a blocking handler never stalls other connections."""

from __future__ import annotations

import asyncio
import threading

import pytest
import websockets

from roost import Request, Roost, inline
from tests.http_client import request
from tests.timing import seconds

KINDS = ["route", "before_request", "after_request", "before_connect", "on_connect", "on_close"]


def blocking_app(kind: str, release: threading.Event, entered: threading.Event) -> Roost:
    """An app where one sync callable of ``kind`` blocks until ``release`` is set."""
    app = Roost(__file__)

    def block() -> None:
        entered.set()
        assert release.wait(10), "the test never released the blocking handler"

    @app.websocket("/echo", ping_interval=None)
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send_text(await websocket.receive_text())

    @app.websocket("/blocking", ping_interval=None)
    async def blocking(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("open")
        await websocket.receive()

    if kind == "route":
        app.get("/slow")(lambda: block() or "done")
    else:
        app.get("/slow")(lambda: "done")
    if kind == "before_request":
        app.before_request("/slow")(lambda request: block())
    if kind == "after_request":
        app.after_request("/slow")(lambda response: block())
    if kind == "before_connect":
        blocking.before_connect(lambda request: block())
    if kind == "on_connect":
        blocking.on_connect(lambda websocket: block())
    if kind == "on_close":
        blocking.on_close(lambda websocket: block())
    return app


@pytest.mark.parametrize("kind", KINDS)
async def test_a_blocking_sync_callable_does_not_stall_other_connections(serve, kind) -> None:  # type: ignore[no-untyped-def]
    release, entered = threading.Event(), threading.Event()
    async with serve(blocking_app(kind, release, entered)) as server:
        base = f"127.0.0.1:{server.port}"
        async with websockets.connect(f"ws://{base}/echo") as echo:
            if kind in ("route", "before_request", "after_request"):
                pending = asyncio.create_task(request(server.port, "GET", "/slow"))
            elif kind == "on_close":
                ws = await websockets.connect(f"ws://{base}/blocking")
                assert await ws.recv() == "open"
                await ws.close()
                pending = asyncio.create_task(asyncio.sleep(0))
            else:  # the handler's first message can only come after the callback returned
                pending = asyncio.create_task(first_message(f"ws://{base}/blocking"))
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
            assert entered.is_set()
            # The sync callable is blocked right now; the loop must still serve everyone.
            for i in range(20):
                await echo.send(f"ping {i}")
                assert await asyncio.wait_for(echo.recv(), seconds(5)) == f"ping {i}"
            assert (await request(server.port, "GET", "/health-of-others")).status == 404
            assert not pending.done() or kind == "on_close"
            release.set()
            result = await asyncio.wait_for(pending, seconds(10))
            if kind in ("route", "before_request", "after_request"):
                assert result.status == 200
                assert result.body == b"done"
            elif kind != "on_close":
                assert result == "open"


async def first_message(url: str) -> object:
    async with websockets.connect(url) as ws:
        return await ws.recv()


async def test_sync_code_runs_in_a_worker_thread_unless_marked_inline(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)
    loop_thread = threading.get_ident()

    @app.get("/threaded")
    def threaded(request: Request):  # type: ignore[no-untyped-def]
        return {"on_loop": threading.get_ident() == loop_thread}

    @app.get("/inline")
    @inline
    def on_loop(request: Request):  # type: ignore[no-untyped-def]
        return {"on_loop": threading.get_ident() == loop_thread}

    @app.get("/async")
    async def coroutine():  # type: ignore[no-untyped-def]
        return {"on_loop": threading.get_ident() == loop_thread}

    async with serve(app) as server:
        assert (await request(server.port, "GET", "/threaded")).json() == {"on_loop": False}
        assert (await request(server.port, "GET", "/inline")).json() == {"on_loop": True}
        assert (await request(server.port, "GET", "/async")).json() == {"on_loop": True}


def test_sync_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sync_threads"):
        Roost(__file__, sync_threads=0)
