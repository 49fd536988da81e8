"""The HTTP access log: one line per answered request, in the common log format, on the
``roost.access`` logger at INFO.

``127.0.0.1 - - [10/Oct/2025:13:55:36 +0000] "GET /items?id=1 HTTP/1.1" 200 2326``

The request line is written as received, with ``"``, ``\\`` and bytes that are not printable
ASCII escaped (``\\x1b``), so a request cannot forge a line. A request roost could not parse,
or a connection refused over a limit, shows ``"-"`` as its request line. The size is the body's
(``-`` for none). With the JSON log format, the same facts are fields: ``client``,
``method``, ``target``, ``http_version``, ``status``, ``bytes``.

The server reads ``roost.access``'s level when it starts: with the logger off (the default
under the runner, see ``--access-log``), answering a request costs nothing more.
"""

from __future__ import annotations

import logging
import re
import time

__all__ = ["access_logger", "log_access"]

access_logger = logging.getLogger("roost.access")

_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def log_access(
    client: str,
    method: str | None,
    target: str,
    http_version: str,
    status: int,
    size: int,
) -> None:
    """Write the line for one answered request (``method`` None: it could not be parsed)."""
    if method is None:
        request_line = "-"
    else:
        request_line = f"{method} {_UNSAFE.sub(_escape, target)} HTTP/{http_version}"
    access_logger.info(
        '%s - - [%s] "%s" %d %s',
        client or "-",
        time.strftime("%d/%b/%Y:%H:%M:%S %z"),
        request_line,
        status,
        size or "-",
        extra={
            "client": client,
            "method": method,
            "target": target,
            "http_version": http_version,
            "status": status,
            "bytes": size,
        },
    )
