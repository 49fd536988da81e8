"""What a WebSocket connection reports after parsing received bytes.

Data messages are reported as plain values, so the hot path allocates nothing extra: a ``str``
is a text message, a ``bytes`` a binary message. Control events are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived; the connection has already queued the pong (RFC 6455 section 5.5.2),
    or, with ``coalesce_pongs`` set, keeps it owed until ``pending_pong()``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived (RFC 6455 section 5.5.3)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is closed for reading: no message follows.

    ``code``/``reason`` are the peer's close frame, or the code the connection was failed with
    when the peer broke the protocol (1002, 1007, 1009), or 1006 when the stream ended.
    """

    code: int
    reason: str


Event = str | bytes | Ping | Pong | Closed
