"""Server-Sent Events: ``SSEResponse(generator)`` streams ``SSEMessage``s as text/event-stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from roost.responses import HeadersLike, StreamingResponse

__all__ = ["SSEMessage", "SSEResponse"]

_END = object()


# In text/event-stream, CRLF, a lone LF and a lone CR all end a line (HTML, section 9.2.5).
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One event: ``data`` (str, or any JSON-serializable value), optional ``event`` name,
    ``id`` and ``retry`` (milliseconds the browser waits before reconnecting).

    Every line of ``data`` (split at CRLF, LF or a lone CR, as browsers do) is sent as its
    own ``data:`` field, so data cannot start another field. An ``event`` or ``id`` with a
    line break (or an ``id`` with NUL, which browsers ignore) raises ValueError here.
    """

    data: Any
    event: str | None = None
    id: str | int | None = None
    retry: int | None = None

    def __post_init__(self) -> None:
        if self.event is not None:
            _one_line("event name", self.event)
        if self.id is not None and "\0" in _one_line("id", str(self.id)):
            raise ValueError(f"an SSE id cannot contain NUL: {self.id!r}")

    def encode(self) -> bytes:
        """The event in the text/event-stream format; each line of data is its own field."""
        data = self.data if isinstance(self.data, str) else orjson.dumps(self.data).decode()
        lines: list[str] = []
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {int(self.retry)}")
        lines += [f"data: {line}" for line in _LINE_BREAK.split(data)]
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _one_line(what: str, value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError(f"an SSE {what} cannot contain a line break: {value!r}")
    return value


class SSEResponse(StreamingResponse):
    """Stream events from a sync or async generator of ``SSEMessage``, ``str`` or ``dict``.

    While the generator is idle for ``keep_alive`` seconds (15), a comment line keeps
    proxies from closing the stream. When the client disconnects, or the server shuts down,
    the generator is closed and the stream ends (browsers reconnect by themselves).
    """

    __slots__ = ("keep_alive",)

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int = 200,
        headers: HeadersLike = None,
        *,
        keep_alive: float | None = 15.0,
    ) -> None:
        super().__init__(
            content, status_code, headers, media_type="text/event-stream", end_on_shutdown=True
        )
        for name, value in (("cache-control", "no-cache"), ("x-accel-buffering", "no")):
            if not self.has_header(name):
                self.headers.append((name, value))
        self.keep_alive = keep_alive

    def encode(self, item: Any) -> bytes:
        """One yielded item as an event: SSEMessage as is, anything else as its data."""
        if isinstance(item, SSEMessage):
            return item.encode()
        if isinstance(item, bytes):
            return SSEMessage(item.decode("utf-8")).encode()
        return SSEMessage(item).encode()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The events, with keep-alive comments while the generator is idle."""
        yield b": stream opened\n\n"  # flushes the headers to the browser at once
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
