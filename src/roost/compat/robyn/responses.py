"""Robyn's ``robyn.responses``: SSE and streaming with Robyn's defaults, files as
attachments, ``html``."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterable, Iterable
from typing import Any

from roost import responses as _responses
from roost import sse
from roost.responses import HeadersLike, Response, html
from roost.sse import SSE_HEADERS, SSEMessage
from roost.staticfiles import serve_file as _serve_file
from roost.staticfiles import serve_html as _serve_html

__all__ = [
    "SSEMessage",
    "SSEResponse",
    "StreamingResponse",
    "html",
    "serve_file",
    "serve_html",
]

EVENT_STREAM = "text/event-stream"


class StreamingResponse(_responses.StreamingResponse):
    """Robyn's StreamingResponse: ``media_type`` defaults to ``text/event-stream``, and every
    stream gets the no-cache headers (``Cache-Control``, ``Pragma``, ``Expires``) and
    ``X-Accel-Buffering: no``."""

    __slots__ = ()

    def __init__(
        self,
        content: Iterable[str | bytes] | AsyncIterable[str | bytes],
        status_code: int | None = None,
        headers: HeadersLike = None,
        media_type: str = EVENT_STREAM,
    ) -> None:
        super().__init__(
            content, status_code, headers, media_type, end_on_shutdown=media_type == EVENT_STREAM
        )
        for name, value in SSE_HEADERS:
            if not self.has_header(name):
                self.headers.append(name, value)


class SSEResponse(sse.SSEResponse):
    """Robyn's SSEResponse: strings (``SSEMessage(...)`` or formatted by hand) are sent as
    they are; other values become events."""

    __slots__ = ()

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int | None = None,
        headers: HeadersLike = None,
    ) -> None:
        super().__init__(content, status_code, headers, raw_strings=True)


async def serve_file(file_path: str, file_name: str | None = None) -> Response:
    """The file at ``file_path`` as an attachment named ``file_name`` (its own name by
    default); 404 if it is not a readable file. Return it from a sync or async handler."""
    name = file_name or os.path.basename(file_path)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 32 or ord(c) > 126 for c in quoted):
        raise ValueError(f"file name {name!r} cannot go in a header: use printable ASCII")
    return await _serve_file(
        file_path,
        content_type=content_type,
        headers={"content-disposition": f'attachment; filename="{quoted}"'},
    )


async def serve_html(file_path: str) -> Response:
    """The HTML file at ``file_path`` as a text/html response."""
    return await _serve_html(file_path)
