"""How roost's logs are written when roost runs the process: the text or JSON format, and the
switches of the two structured logs.

Loggers: ``roost`` (and ``roost.server``, ``roost.hub``) for what happens to the server;
``roost.session``, one line per WebSocket session end (on by default); ``roost.access``, one
line per HTTP request in the common log format (off by default). Both structured logs are at
INFO, so ``--log-level WARNING`` silences them too.

With ``--log-format json`` every line is one JSON object: ``time`` (UTC, ISO 8601), ``level``,
``logger``, ``message``, the record's structured fields (a session's ``endpoint``, ``id``,
``duration``...; a request's ``status``, ``bytes``...) and ``exception`` when there is one.

A program that configured logging itself keeps its handlers and formats; the switches then
only set the two loggers' levels.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The attributes every LogRecord has; the others were given with ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ``extra=`` fields, and
    the exception's traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(
    level: str,
    *,
    log_format: str = "text",
    access_log: bool = False,
    session_log: bool = True,
) -> None:
    """Log to stderr at ``level`` in ``log_format`` (``"text"`` or ``"json"``), unless the
    program configured logging already; switch the access and session logs on or off.

    In text format the access log's lines are the common log format alone, without the
    time and level prefix of the other lines.
    """
    root = logging.getLogger()
    owned = not root.handlers
    json = log_format == "json"
    if owned:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    access = logging.getLogger("roost.access")
    access.setLevel(logging.NOTSET if access_log else logging.WARNING)
    if owned and access_log and not json:
        plain = logging.StreamHandler()
        plain.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(plain)
        access.propagate = False
    logging.getLogger("roost.session").setLevel(logging.NOTSET if session_log else logging.WARNING)
