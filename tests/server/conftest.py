"""Fixtures for the server layer's tests: a ``Server`` on the test's loop that listens nowhere,
fed by in-memory transports (see fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from roost.protocol.http import HttpRequest
from roost.server.http import HttpConnection
from roost.server.options import ServerOptions
from roost.server.serve import RequestHandler, Server
from tests.timing import seconds

MakeServer = Callable[..., Server]


async def hello(request: HttpRequest, conn: HttpConnection) -> None:
    """The default handler: ``hello`` in plain text."""
    conn.send_response(200, [("content-type", "text/plain")], b"hello")


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """``make_server(handler, **server_options)``; every server made is shut down at once (its
    connections dropped, its tasks cancelled) when the test ends."""
    made: list[Server] = []

    def make(handler: RequestHandler = hello, **options: object) -> Server:
        server = Server(handler, options=ServerOptions(**options))  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        await server.shutdown(timeout=seconds(0))
