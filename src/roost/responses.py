"""What handlers return: Response, and how plain values become responses."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
import orjson

from roost.protocol.errors import ClientDisconnected
from roost.protocol.http import Headers

if TYPE_CHECKING:
    from roost.server.http import HttpConnection

HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
Body = str | bytes | dict[str, Any] | list[Any] | None

__all__ = [
    "Body",
    "HeadersLike",
    "Response",
    "StreamingResponse",
    "html",
    "jsonify",
    "plain",
    "to_headers",
    "to_response",
]

#: RFC 6265 section 4.1.1: the characters a cookie value may hold unquoted.
_COOKIE_VALUE: Final = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAME_SITE: Final = {"strict": "Strict", "lax": "Lax", "none": "None"}


def to_headers(headers: HeadersLike) -> Headers:
    """Any accepted form of headers as a new Headers (a Headers given is copied, so a shared
    one is never changed through a response)."""
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return Headers(headers.raw)
    return Headers(headers)


def header_list(headers: HeadersLike) -> list[tuple[str, str]]:
    """Any accepted form of headers as a list of (name, value) pairs."""
    return to_headers(headers).raw


def jsonify(data: Any) -> str:
    """``data`` (dict, list or any value orjson serializes) as a JSON string."""
    return orjson.dumps(data).decode("utf-8")


class Response:
    """An HTTP response: ``Response(status_code, headers, description)``.

    ``description`` (or, by keyword, ``body``) is the body: ``str`` (sent as UTF-8),
    ``bytes``, or a ``dict``/``list`` (sent as JSON). Without a content-type header one is
    chosen from the body's type. ``headers`` is a Headers (``response.headers.set(...)``),
    built from a dict, a list of pairs or a Headers (copied).
    """

    __slots__ = ("body", "file_path", "headers", "response_type", "status_code")

    def __init__(
        self,
        status_code: int = 200,
        headers: HeadersLike = None,
        description: Body = b"",
        *,
        body: Body = None,
    ) -> None:
        self.status_code = int(status_code)
        self.headers = Headers() if headers is None else to_headers(headers)
        self.response_type: str | None = None
        self.file_path: str | None = None
        content = body if body is not None else description
        content_type: str | None = None
        if content is None:
            self.body = b""
        elif isinstance(content, bytes | bytearray | memoryview):
            self.body = bytes(content)
            content_type = "application/octet-stream"
        elif isinstance(content, str):
            self.body = content.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        else:
            self.body = orjson.dumps(content)
            content_type = "application/json"
        if content_type and self.body and (headers is None or "content-type" not in self.headers):
            self.headers.append("content-type", content_type)

    def has_header(self, name: str) -> bool:
        """Whether header ``name`` (any case) is set."""
        return name in self.headers

    def set_header(self, name: str, value: str) -> None:
        """Set header ``name``, replacing any value it had."""
        self.headers.set(name, value)

    @property
    def description(self) -> str:
        """The body as text; setting it (``str`` or ``bytes``) replaces the body."""
        return self.body.decode("utf-8", "replace")

    @description.setter
    def description(self, value: str | bytes) -> None:
        self.body = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def set_cookie(
        self,
        key: str,
        value: str,
        path: str | None = None,
        domain: str | None = None,
        max_age: int | None = None,
        expires: str | None = None,
        secure: bool = False,
        http_only: bool = False,
        same_site: str | None = None,
    ) -> None:
        """Add a ``Set-Cookie`` header (RFC 6265), replacing an earlier cookie named ``key``.

        A name that is not a token, a value outside RFC 6265's cookie characters (use
        URL-encoding for others), an attribute with ``;`` or a line break, or a ``same_site``
        other than Strict, Lax or None raises ValueError.
        """
        if not _TOKEN.fullmatch(key):
            raise ValueError(f"invalid cookie name {key!r}: it must be an HTTP token")
        if not _COOKIE_VALUE.fullmatch(value):
            raise ValueError(
                f"invalid cookie value {value!r}: use letters, digits and !#$%&'()*+-./:<=>?@[]^_"
                "`{|}~ (URL-encode anything else)"
            )
        parts = [f"{key}={value}"]
        for name, attr in (("Path", path), ("Domain", domain), ("Expires", expires)):
            if attr is not None:
                if any(c in attr for c in ";\r\n\0"):
                    raise ValueError(f"invalid cookie {name} {attr!r}")
                parts.append(f"{name}={attr}")
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if secure:
            parts.append("Secure")
        if http_only:
            parts.append("HttpOnly")
        if same_site is not None:
            canonical = _SAME_SITE.get(same_site.lower())
            if canonical is None:
                raise ValueError(f"invalid same_site {same_site!r}: Strict, Lax or None")
            parts.append(f"SameSite={canonical}")
        kept = [
            (k, v)
            for k, v in self.headers.raw
            if not (k.lower() == "set-cookie" and v.split("=", 1)[0] == key)
        ]
        self.headers = Headers([*kept, ("set-cookie", "; ".join(parts))])

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {len(self.body)} bytes>"


def to_response(value: Any) -> Response:
    """Turn what a handler returned into a Response: str, bytes, dict, list, None, a
    Response, or a ``(description, headers, status_code)`` tuple."""
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(200, None, b"")
    if isinstance(value, str | bytes | dict | list):
        if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            return _typed(value)
        return Response(200, None, value)
    if isinstance(value, msgspec.Struct):
        return _typed(value)
    if isinstance(value, tuple):
        if len(value) != 3:
            raise TypeError(
                f"a handler returned a tuple of {len(value)}; a tuple must be "
                "(description, headers, status_code)"
            )
        description, headers, status_code = value
        return Response(status_code, headers, description)
    raise TypeError(
        f"a handler returned {type(value).__name__}; return str, bytes, dict, list, "
        "a (description, headers, status_code) tuple or Response"
    )


def _typed(value: Any) -> Response:
    """A msgspec Struct (or a list of them) as JSON."""
    return Response(200, [("content-type", "application/json")], msgspec.json.encode(value))


def plain(status: int, message: str, headers: HeadersLike = None) -> Response:
    """A short text/plain response, for errors."""
    return Response(status, headers, message)


def html(text: str, status_code: int = 200) -> Response:
    """An HTML page from a string, as text/html; charset=utf-8."""
    return Response(status_code, [("content-type", "text/html; charset=utf-8")], text)


class StreamingResponse(Response):
    """A response whose body comes from an iterator.

    ``content`` is a sync or async iterable of ``str`` (sent as UTF-8) or ``bytes``;
    ``media_type`` (kept as an attribute) is the content-type unless ``headers`` set one. A sync
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

    __slots__ = ("content", "content_length", "end_on_shutdown", "media_type")

    def __init__(
        self,
        content: Iterable[str | bytes] | AsyncIterable[str | bytes],
        status_code: int | None = 200,
        headers: HeadersLike = None,
        media_type: str = "application/octet-stream",
        *,
        content_length: int | None = None,
        end_on_shutdown: bool = False,
    ) -> None:
        super().__init__(200 if status_code is None else status_code, headers, b"")
        if not self.has_header("content-type"):
            self.headers.append("content-type", media_type)
        self.media_type = media_type
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
                self.headers.raw,
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
