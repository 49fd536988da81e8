"""roost's exception hierarchy. This module imports nothing, so every layer can use it."""

from __future__ import annotations


class RoostError(Exception):
    """Base class of every exception roost raises."""


class ProtocolError(RoostError):
    """The peer broke RFC 6455; the connection is failed with ``code`` (1002, 1007, 1009, ...)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


class HandshakeError(RoostError):
    """A request that cannot be upgraded; answered with HTTP ``status`` before any 101."""

    def __init__(
        self, status: int, reason: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


class HttpError(RoostError):
    """A malformed or over-limit HTTP request; answered with HTTP ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class InvalidResponse(RoostError, ValueError):
    """A response that cannot be sent as it is: a status outside 200-599, a header name that is
    not an RFC 9110 token, or a header value with a line break, another control character or
    a character outside Latin-1. Raised before anything is written, so the client gets a 500."""


class InvalidState(RoostError):
    """Local misuse: an operation that the connection's current state does not allow."""


class WebSocketDisconnect(RoostError):
    """The WebSocket connection is closed: raised by ``receive*`` and by sends after the close.

    ``code`` is the close code the peer sent, or 1006 when the connection dropped without a
    close frame; ``reason`` is the close reason (possibly empty).
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class ClientDisconnected(RoostError):
    """The HTTP client went away while a response (a stream, SSE) was being written."""
