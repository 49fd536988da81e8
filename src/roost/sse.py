"""Server-Sent Events: ``SSEResponse(generator)`` streams ``SSEMessage``s as text/event-stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any, Final

import orjson

from roost.responses import HeadersLike, StreamingResponse

__all__ = ["SSEMessage", "SSEResponse"]

_END = object()


# In text/event-stream, CRLF, a lone LF and a lone CR all end a line (HTML, section 9.2.5).
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


class SSEMessage(str):
    """One event, as the text it is sent as: ``SSEMessage(data, event=None, id=None,
    retry=None)`` is a ``str`` in the text/event-stream format (``.encode()`` gives its bytes),
    and keeps ``data``, ``event``, ``id`` and ``retry`` as attributes.

    ``data`` is a str, or any JSON-serializable value (sent as JSON); ``retry`` is the
    milliseconds a browser waits before reconnecting. Every line of ``data`` (split at CRLF, LF
    or a lone CR, as browsers do) is sent as its own ``data:`` field, so data cannot start
    another field. An ``event`` or ``id`` with a line break (or an ``id`` with NUL, which
    browsers ignore) raises ValueError.
    """

    data: Any
    event: str | None
    id: str | int | None
    retry: int | None

    def __new__(
        cls,
        data: Any = "",
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
    ) -> SSEMessage:
        text = data if isinstance(data, str) else orjson.dumps(data).decode()
        lines: list[str] = []
        if event is not None:
            lines.append(f"event: {_one_line('event name', event)}")
        if id is not None:
            if "\0" in _one_line("id", str(id)):
                raise ValueError(f"an SSE id cannot contain NUL: {id!r}")
            lines.append(f"id: {id}")
        if retry is not None:
            lines.append(f"retry: {int(retry)}")
        lines += [f"data: {line}" for line in _LINE_BREAK.split(text)]
        message = super().__new__(cls, "\n".join(lines) + "\n\n")
        message.data = data
        message.event = event
        message.id = id
        message.retry = retry
        return message

    def __repr__(self) -> str:
        return (
            f"SSEMessage(data={self.data!r}, event={self.event!r}, id={self.id!r}, "
            f"retry={self.retry!r})"
        )


def _one_line(what: str, value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError(f"an SSE {what} cannot contain a line break: {value!r}")
    return value


#: Headers every SSE response gets unless the handler set them: no cache and no proxy
#: buffering may hold events back.
SSE_HEADERS: Final = (
    ("cache-control", "no-cache, no-store, must-revalidate"),
    ("pragma", "no-cache"),
    ("expires", "0"),
    ("x-accel-buffering", "no"),
)


class SSEResponse(StreamingResponse):
    """Stream events from a sync or async generator of ``SSEMessage``, ``str``, ``bytes`` or
    ``dict``.

    An ``SSEMessage`` is sent as it is. Any other item is sent as the data of one event, or,
    with ``raw_strings=True``, a ``str`` (or ``bytes``) is sent as it is: the generator then
    writes the event-stream format itself, and whatever it yields reaches the browser
    unchecked.

    While the generator is idle for ``keep_alive`` seconds (15), a comment line keeps
    proxies from closing the stream. When the client disconnects, or the server shuts down,
    the generator is closed and the stream ends (browsers reconnect by themselves).
    """

    __slots__ = ("keep_alive", "raw_strings")

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int | None = 200,
        headers: HeadersLike = None,
        *,
        keep_alive: float | None = 15.0,
        raw_strings: bool = False,
    ) -> None:
        super().__init__(
            content, status_code, headers, media_type="text/event-stream", end_on_shutdown=True
        )
        for name, value in SSE_HEADERS:
            if not self.has_header(name):
                self.headers.append(name, value)
        self.keep_alive = keep_alive
        self.raw_strings = raw_strings

    def encode(self, item: Any) -> bytes:
        """One yielded item as bytes of the event stream."""
        if isinstance(item, SSEMessage):
            return item.encode("utf-8")
        if isinstance(item, bytes | bytearray | memoryview):
            data = bytes(item)
            return data if self.raw_strings else SSEMessage(data.decode("utf-8")).encode()
        if isinstance(item, str) and self.raw_strings:
            return item.encode("utf-8")
        return SSEMessage(item).encode("utf-8")

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The events, with keep-alive comments while the generator is idle (the head is
        written before the first event, so the browser sees the stream open at once)."""
        items = self.items()
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(items, _END))
                done, _ = await asyncio.wait({pending}, timeout=self.keep_alive)
                if not done:
                    yield b": keep-alive\n\n"
                    continue
                item, pending = pending.result(), None
                if item is _END:
                    return
                yield self.encode(item)
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            await items.aclose()
