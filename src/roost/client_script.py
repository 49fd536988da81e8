"""roost's browser client: the script shipped inside the package (``roost/static/client.js``,
docs/client.md) and the response that serves it.

The response is the same for every request of a process: the script with a strong ETag (a
hash of its bytes, so every worker and every restart of one release agree on it),
``Cache-Control: no-cache`` (browsers keep it and check it with ``If-None-Match``, so an
upgrade of roost reaches them at once) and ``304 Not Modified`` when the browser's copy is
current.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from roost.requests import Request
from roost.responses import Response
from roost.staticfiles import etag_matches

__all__ = ["CLIENT_PATH", "ClientScript", "check_client_path"]

#: Where an app serves the script unless told otherwise (``Roost(client_path=...)``).
CLIENT_PATH = "/roost/client.js"
_CONTENT_TYPE = "text/javascript; charset=utf-8"


def check_client_path(path: str | None) -> str | None:
    """``path`` if it can be where the script is served (None: nowhere); ValueError else."""
    if path is None:
        return None
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(
            f"client_path must be a path starting with '/', without a query (or None), not {path!r}"
        )
    return path


class ClientScript:
    """The script, read once from the package; ``respond(request)`` answers a GET or HEAD."""

    __slots__ = ("body", "etag")

    def __init__(self) -> None:
        self.body = resources.files("roost").joinpath("static", "client.js").read_bytes()
        self.etag = f'"{hashlib.blake2s(self.body, digest_size=8).hexdigest()}"'

    def respond(self, request: Request) -> Response:
        """The script, or 304 when ``If-None-Match`` names its ETag."""
        headers = {
            "content-type": _CONTENT_TYPE,
            "etag": self.etag,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        }
        match = request.headers.get("if-none-match")
        if match is not None and etag_matches(match, self.etag):
            del headers["content-type"]
            return Response(304, headers, b"")
        return Response(200, headers, self.body)
