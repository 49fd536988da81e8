"""HEAD sends the head of the GET response and nothing else, for every kind of response, so the
next response on a keep-alive connection is read intact."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from roost import Response, Roost, SSEMessage, SSEResponse, StreamingResponse
from roost.staticfiles import STREAM_THRESHOLD
from tests.http_client import read_response, request_bytes

BIG = STREAM_THRESHOLD + 512 * 1024


def make_app(root: Path, iterated: list[str], generators: list[object]) -> Roost:
    app = Roost(__file__)
    app.serve_directory("/static", str(root))

    @app.get("/plain")
    def plain():  # type: ignore[no-untyped-def]
        return "hello"

    @app.get("/stream")
    def stream():  # type: ignore[no-untyped-def]
        async def body() -> AsyncIterator[str]:
            iterated.append("stream")
            yield "one,"
            yield "two"

        gen = body()
        generators.append(gen)
        return StreamingResponse(gen, media_type="text/plain")

    @app.get("/sync-stream")
    def sync_stream():  # type: ignore[no-untyped-def]
        def body() -> Iterator[bytes]:
            iterated.append("sync-stream")
            yield b"sync"

        gen = body()
        generators.append(gen)
        return StreamingResponse(gen)

    @app.get("/events")
    def events():  # type: ignore[no-untyped-def]
        async def body() -> AsyncIterator[SSEMessage]:
            iterated.append("events")
            yield SSEMessage("tick")

        gen = body()
        generators.append(gen)
        return SSEResponse(gen)

    @app.get("/empty")
    def empty():  # type: ignore[no-untyped-def]
        return Response(204, None, "ignored: a 204 has no body")

    @app.get("/next")
    def after():  # type: ignore[no-untyped-def]
        return "next response"

    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "small.txt").write_text("small file")
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    return tmp_path


def closed(gen: object) -> bool:
    if inspect.isasyncgen(gen):
        return gen.ag_frame is None  # closed or exhausted
    return inspect.getgeneratorstate(gen) == inspect.GEN_CLOSED  # type: ignore[arg-type]


async def get_then_head(port: int, path: str, headers: dict[str, str] | None = None) -> None:
    """GET ``path``, then HEAD it and GET /next pipelined on the same connection: the HEAD
    reply has the GET reply's headers and no body, and /next is read intact after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes("GET", path, headers))
        full = await read_response(reader)
        writer.write(
            request_bytes("HEAD", path, headers)
            + request_bytes("GET", "/next")
            + request_bytes("HEAD", path, headers)
            + request_bytes("GET", "/next")
        )
        for _ in range(2):
            head = await read_response(reader, "HEAD")
            assert head.status == full.status
            framing = {"content-length", "transfer-encoding"}
            assert {k: v for k, v in head.headers.items() if k not in framing | {"date"}} == {
                k: v for k, v in full.headers.items() if k not in framing | {"date"}
            }
            if "content-length" in head.headers:
                assert int(head.headers["content-length"]) == len(full.body)
            following = await read_response(reader)
            assert (following.status, following.body) == (200, b"next response")
    finally:
        writer.close()


@pytest.mark.parametrize(
    "path",
    ["/plain", "/stream", "/sync-stream", "/events", "/empty", "/static/small.txt"],
)
async def test_head_then_keep_alive(serve, root: Path, path: str) -> None:  # type: ignore[no-untyped-def]
    iterated: list[str] = []
    generators: list[object] = []
    async with serve(make_app(root, iterated, generators)) as server:
        await get_then_head(server.port, path)
        # Only the GET iterated its generator; the HEADs' generators were closed unread.
        assert len(iterated) <= 1
        for gen in generators:
            assert closed(gen)


async def test_head_on_304(serve, root: Path) -> None:  # type: ignore[no-untyped-def]
    async with serve(make_app(root, [], [])) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes("GET", "/static/small.txt"))
        etag = (await read_response(reader)).headers["etag"]
        writer.close()
        await get_then_head(server.port, "/static/small.txt", {"If-None-Match": etag})


async def test_head_on_a_large_file_does_not_read_it(  # type: ignore[no-untyped-def]
    serve, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = root / "big.bin"
    opened: list[str] = []
    real_open = Path.open
    real_read = Path.read_bytes

    def spy_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        opened.append(self.name)
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_read(self: Path) -> bytes:
        opened.append(self.name)
        return real_read(self)

    monkeypatch.setattr(Path, "open", spy_open)
    monkeypatch.setattr(Path, "read_bytes", spy_read)
    async with serve(make_app(root, [], [])) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes("HEAD", "/static/big.bin") + request_bytes("GET", "/next"))
        head = await read_response(reader, "HEAD")
        assert head.status == 200
        assert head.headers["content-length"] == str(BIG)
        assert (await read_response(reader)).body == b"next response"
        assert "big.bin" not in opened
        # The GET streams it, with its length, and the connection stays usable.
        writer.write(request_bytes("GET", "/static/big.bin") + request_bytes("GET", "/next"))
        full = await read_response(reader)
        assert full.headers["content-length"] == str(BIG)
        assert full.body == big.read_bytes()
        assert (await read_response(reader)).body == b"next response"
        writer.close()
        await get_then_head(server.port, "/static/big.bin")
