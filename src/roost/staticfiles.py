"""Files from disk: ``serve_file``, ``serve_html`` and directory serving, safely."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from collections.abc import Awaitable, Callable, Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from roost.requests import Request
from roost.responses import Response, StreamingResponse

__all__ = ["directory_handler", "etag_matches", "serve_file", "serve_html"]

CHUNK_SIZE = 64 * 1024
#: Files up to this size are read whole; larger ones are streamed in CHUNK_SIZE chunks (and
#: not read at all for HEAD).
STREAM_THRESHOLD = 1024 * 1024


def _content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if kind is None or encoding is not None:
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        return f"{kind}; charset=utf-8"
    return kind


def _etag(stat: os.stat_result) -> str:
    digest = hashlib.blake2s(f"{stat.st_mtime_ns}-{stat.st_size}".encode(), digest_size=8)
    return f'"{digest.hexdigest()}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag`` (compared weakly, as RFC 9110
    section 13.1.2 says for GET and HEAD) or is ``*``."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _not_modified(request: Request | None, etag: str, mtime: float) -> bool:
    if request is None:
        return False
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag_matches(match, etag)
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _read_chunks(path: Path, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of the file; the file is opened on the first step only."""
    with path.open("rb") as f:
        while size > 0 and (chunk := f.read(min(CHUNK_SIZE, size))):
            size -= len(chunk)
            yield chunk


async def serve_file(
    path: str | os.PathLike[str],
    *,
    request: Request | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The file at ``path`` as a response, or 404 if it is not a readable file.

    Sets content-type (from the name), ETag and Last-Modified; with ``request`` given,
    answers a matching If-None-Match / If-Modified-Since with 304. Files over
    ``STREAM_THRESHOLD`` (1 MiB) are streamed, with their Content-Length.
    """
    file = Path(path)
    try:
        stat = file.stat()
    except OSError:
        return Response(404, None, "Not Found")
    if not file.is_file():
        return Response(404, None, "Not Found")
    etag = _etag(stat)
    base = {
        "content-type": content_type or _content_type(file),
        "etag": etag,
        "last-modified": formatdate(stat.st_mtime, usegmt=True),
        **(headers or {}),
    }
    if _not_modified(request, etag, stat.st_mtime):
        return Response(304, {k: v for k, v in base.items() if k != "content-type"}, b"")
    if stat.st_size > STREAM_THRESHOLD:
        # Streamed with its length; a HEAD request closes the generator before it opens the
        # file. A file that shrinks while it is sent is cut off, never passed off as whole.
        return StreamingResponse(
            _read_chunks(file, stat.st_size), 200, base, content_length=stat.st_size
        )
    try:
        body = await asyncio.get_running_loop().run_in_executor(None, file.read_bytes)
    except OSError:
        return Response(404, None, "Not Found")
    return Response(200, base, body)


async def serve_html(path: str | os.PathLike[str], *, request: Request | None = None) -> Response:
    """The HTML file at ``path`` as a text/html response."""
    return await serve_file(path, request=request, content_type="text/html; charset=utf-8")


def directory_handler(
    directory_path: str | os.PathLike[str], index_file: str | None = None
) -> Callable[[Request, str], Awaitable[Response]]:
    """A handler serving files under ``directory_path`` by sub-path.

    A sub-path with a NUL byte gets 400; one with a ``..`` segment, or that resolves
    (through symlinks) outside the directory, gets 404. A directory is answered with its
    ``index_file`` when given, else 404.
    """
    root = Path(directory_path).resolve()

    async def handler(request: Request, subpath: str) -> Response:
        if "\x00" in subpath:
            return Response(400, None, "Bad Request")
        parts = [p for p in subpath.replace("\\", "/").split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return Response(404, None, "Not Found")
        target = root.joinpath(*parts).resolve()
        if target != root and root not in target.parents:
            return Response(404, None, "Not Found")
        if target.is_dir():
            if index_file is None:
                return Response(404, None, "Not Found")
            target = target / index_file
        return await serve_file(target, request=request)

    return handler
