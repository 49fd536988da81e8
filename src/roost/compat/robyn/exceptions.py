"""Robyn's ``robyn.exceptions``: exceptions an app raises and handles itself (``@app.exception``
receives them like any other)."""

from __future__ import annotations

import http

__all__ = ["HTTPException", "WebSocketException"]


class HTTPException(Exception):
    """An HTTP error: ``status_code`` and ``detail`` (the status's phrase by default)."""

    def __init__(self, status_code: int, detail: str | None = None) -> None:
        self.status_code = status_code
        self.detail = detail if detail is not None else http.HTTPStatus(status_code).phrase
        super().__init__(f"{status_code}: {self.detail}")


class WebSocketException(Exception):
    """A WebSocket error: close ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(f"{code}: {self.reason}")
