"""What handlers return: Response, and how plain values become responses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from roost.protocol.errors import ClientDisconnected
from roost.protocol.http import Headers

if TYPE_CHECKING:
    from roost.server.http import HttpConnection

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None


def header_list(headers: HeadersLike) -> list[tuple[str, str]]:
    """Any accepted form of headers as a list of (name, value) pairs."""
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.items()
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


class Response:
    """An HTTP response: ``Response(status_code, headers, description)``.

    ``description`` is the body: ``str`` (sent as UTF-8), ``bytes``, or a ``dict``/``list``
    (sent as JSON). Without a content-type header one is chosen from the body's type.
    """

    __slots__ = ("body", "headers", "status_code")

    def __init__(
        self,
        status_code: int = 200,
        headers: HeadersLike = None,
        description: str | bytes | dict[str, Any] | list[Any] | None = b"",
    ) -> None:
        self.status_code = int(status_code)
        self.headers = header_list(headers)
        content_type: str | None = None
        if description is None:
            self.body = b""
        elif isinstance(description, bytes | bytearray | memoryview):
            self.body = bytes(description)
            content_type = "application/octet-stream"
        elif isinstance(description, str):
            self.body = description.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        else:
            self.body = orjson.dumps(description)
            content_type = "application/json"
        if content_type and self.body and not self.has_header("content-type"):
            self.headers.append(("content-type", content_type))

    def has_header(self, name: str) -> bool:
        """Whether header ``name`` (any case) is set."""
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self.headers)

    def set_header(self, name: str, value: str) -> None:
        """Set header ``name``, replacing any value it had."""
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]
        self.headers.append((name, value))

    @property
    def description(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {len(self.body)} bytes>"


def to_response(value: Any) -> Response:
    """Turn what a handler returned into a Response (str, bytes, dict, list, None, Response)."""
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(200, None, b"")
    if isinstance(value, str | bytes | dict | list):
        return Response(200, None, value)
    raise TypeError(
        f"a handler returned {type(value).__name__}; return str, bytes, dict, list or Response"
    )


def plain(status: int, message: str, headers: HeadersLike = None) -> Response:
    """A short text/plain response, for errors."""
    return Response(status, headers, message)


class StreamingResponse(Response):
    """A response whose body comes from an iterator.

    ``content`` is a sync or async iterable of ``str`` (sent as UTF-8) or ``bytes``. A sync
    iterator is advanced in a worker thread, so a generator that sleeps does not block the
    server. When the client disconnects, the iterator is closed (its ``finally`` runs); for
    HEAD (and 204, 304) it is closed without being iterated, and only the head is sent.

    The body is sent with chunked transfer encoding, or, when ``content_length`` (bytes) is
    given, as exactly that many bytes (a body that turns out longer or shorter is cut off and
    the connection dropped, so the client cannot take it for whole).

    At a graceful shutdown a stream still running is given until ``shutdown_timeout``, then
    dropped; with ``end_on_shutdown`` (SSEResponse's default) it ends at once instead, with
    a proper end of body.
    """

    __slots__ = ("content", "content_length", "end_on_shutdown")

    def __init__(
        self,
        content: Iterable[str | bytes] | AsyncIterable[str | bytes],
        status_code: int = 200,
        headers: HeadersLike = None,
        media_type: str = "application/octet-stream",
        *,
        content_length: int | None = None,
        end_on_shutdown: bool = False,
    ) -> None:
        super().__init__(status_code, headers, b"")
        if not self.has_header("content-type"):
            self.headers.append(("content-type", media_type))
        self.content = content
        self.content_length = content_length
        self.end_on_shutdown = end_on_shutdown

    def encode(self, item: Any) -> bytes:
        """One item of ``content`` as bytes: ``str`` as UTF-8, bytes-like as is."""
        return item.encode("utf-8") if isinstance(item, str) else bytes(item)

    async def items(self) -> AsyncGenerator[Any, None]:
        """The items of ``content``; a sync iterator is advanced in a worker thread."""
        if isinstance(self.content, AsyncIterable):
            async for item in self.content:
                yield item
            return
        loop = asyncio.get_running_loop()
        iterator = iter(self.content)
        end = object()

        def step() -> Any:
            return next(iterator, end)

        try:
            while True:
                value = await loop.run_in_executor(None, step)
                if value is end:
                    return
                yield value
        finally:
            await _close_iterator(iterator)

    async def close_content(self) -> None:
        """Close ``content`` without iterating it: a generator's ``finally`` runs if it had
        started, and it never will."""
        if isinstance(self.content, AsyncIterable):
            aclose = getattr(self.content, "aclose", None)
            if aclose is not None:
                await aclose()
        else:
            await _close_iterator(self.content)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body, chunk by chunk, as bytes."""
        items = self.items()
        try:
            async for item in items:
                yield self.encode(item)
        finally:
            await items.aclose()

    async def write_to(self, conn: HttpConnection, *, include_body: bool = True) -> None:
        """Stream this response on ``conn``; stop as soon as the client goes away (and, with
        ``end_on_shutdown``, when the server shuts down). ``include_body=False`` sends the
        head only, as for HEAD."""
        try:
            conn.start_stream(
                self.status_code,
                self.headers,
                content_length=self.content_length,
                head_only=not include_body,
            )
        except BaseException:
            await self.close_content()
            raise
        if not conn.stream_has_body:
            await self.close_content()
            return
        chunks = self.chunks()
        stop = {asyncio.ensure_future(conn.wait_disconnected())}
        if self.end_on_shutdown:
            stop.add(asyncio.ensure_future(conn.server.wait_closing()))
        step: asyncio.Future[bytes | None] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(chunks, None))
                await asyncio.wait({step, *stop}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    if conn.closed:
                        raise ClientDisconnected("the client disconnected")
                    break  # the server is shutting down: end the body here
                chunk = step.result()
                if chunk is None:
                    break
                await conn.write_chunk(chunk)
        finally:
            for waiter in stop:
                waiter.cancel()
            if step is not None and not step.done():  # also when this task is cancelled
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
            await chunks.aclose()
        conn.end_stream()


async def _close_iterator(iterator: object) -> None:
    """Close a sync iterator that has a ``close`` (a generator), in a worker thread: its
    ``finally`` may block."""
    close = getattr(iterator, "close", None)
    if close is not None:
        with contextlib.suppress(ValueError):  # still running in its thread
            await asyncio.get_running_loop().run_in_executor(None, close)
