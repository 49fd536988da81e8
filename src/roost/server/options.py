"""Every limit and timer of the server, with its default; all are keyword-only settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from roost.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE
from roost.protocol.deflate import DeflateSettings
from roost.protocol.http import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
)

SlowConsumerPolicy = Literal["close", "drop"]


def _require(
    options: object, name: str, kind: str, *, zero: bool = False, none: bool = False
) -> None:
    """Raise ValueError unless the field ``name`` of ``options`` is a finite ``kind`` ("size":
    an int; "time": an int or a float) over 0, or at least 0 with ``zero``, or None with
    ``none``: a value that cannot work is refused when the options are made, not found out
    by the first connection."""
    value = getattr(options, name)
    if value is None and none:
        return
    types = (int,) if kind == "size" else (int, float)
    if (
        isinstance(value, types)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    ):
        return
    wanted = f"{'an int' if kind == 'size' else 'a number'} {'>= 0' if zero else '> 0'}"
    if none:
        wanted += " or None"
    raise ValueError(f"{type(options).__name__}.{name} must be {wanted}, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketOptions:
    """Per-endpoint WebSocket settings. Sizes are bytes, times seconds; None turns a timer off.

    - ``max_message_size``: largest message accepted, after decompression (1 MiB); over it: 1009.
    - ``max_queue``: received messages buffered before reading from the socket pauses (32);
      while it is paused, ``ping_timeout`` and ``idle_timeout`` do not run, and both restart
      when reading resumes. Once roost has sent its close frame, reading resumes so that the
      peer's close frame arrives, and messages past ``max_queue`` are dropped.
    - ``write_limit``: outbound buffer size past which ``send_*`` waits for the socket (64 KiB);
      past it, only the latest client ping gets a pong (with the next message, or once the
      buffer is down to a quarter) and reading from that client pauses until then.
    - ``max_outbound_buffer``: outbound bytes a connection may have queued before the
      slow-consumer policy applies to broadcasts and ``send_to`` (4 MiB).
    - ``slow_consumer``: ``"close"`` (close with 1008, the default) or ``"drop"`` (skip messages).
    - ``ping_interval`` / ``ping_timeout``: server pings (20 s / 20 s), one at a time; a ping
      that no pong with its payload answers in time closes the connection with 1011.
    - ``idle_timeout``: close with 1001 when no message (text or binary) arrives for this long
      (off). A message counts when its last frame arrives; pings, pongs and the frames of an
      unfinished message do not count.
    - ``close_timeout``: how long to wait for the peer's close frame before dropping (10 s).
    - ``compression``: negotiate permessage-deflate when the client offers it (on). The
      settings below apply when it is negotiated (``roost.protocol.deflate.DeflateSettings``
      says what each costs):
    - ``compression_threshold``: messages shorter than this many bytes go uncompressed (256).
    - ``server_no_context_takeover`` / ``client_no_context_takeover``: ask that each message
      be compressed on its own, by the server / by the client (both True): no compressor or
      decompressor is kept between messages, and a broadcast is compressed once.
    - ``server_max_window_bits`` / ``client_max_window_bits``: LZ77 windows, 9 to 15 (12).
    - ``compression_level``: zlib's level, 1 to 9 (6); ``compression_mem_level``: zlib's
      memLevel, 1 to 9 (5).
    - ``compression_idle_timeout``: a connection with server context takeover drops its
      compressor after between one and two of these periods without a compressed message
      (30 s; None keeps it).
    """

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_queue: int = 32
    write_limit: int = 64 * 1024
    max_outbound_buffer: int = 4 * 1024 * 1024
    slow_consumer: SlowConsumerPolicy = "close"
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    idle_timeout: float | None = None
    close_timeout: float = 10.0
    compression: bool = True
    compression_threshold: int = 256
    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = True
    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    compression_level: int = 6
    compression_mem_level: int = 5
    compression_idle_timeout: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_queue", "write_limit", "max_outbound_buffer"):
            _require(self, name, "size")
        for name in ("ping_interval", "ping_timeout", "idle_timeout"):
            _require(self, name, "time", none=True)
        _require(self, "close_timeout", "time")
        if self.slow_consumer not in ("close", "drop"):
            raise ValueError("slow_consumer must be 'close' or 'drop'")
        if not isinstance(self.compression, bool):
            raise ValueError(
                f"WebSocketOptions.compression must be True or False, not {self.compression!r}"
            )
        _require(self, "compression_idle_timeout", "time", none=True)
        try:
            self.deflate_settings()
        except ValueError as exc:  # a compression setting out of range: name it as ours
            raise ValueError(f"WebSocketOptions.{exc}") from None

    def deflate_settings(self) -> DeflateSettings:
        """The permessage-deflate settings these options give."""
        return DeflateSettings(
            server_no_context_takeover=self.server_no_context_takeover,
            client_no_context_takeover=self.client_no_context_takeover,
            server_max_window_bits=self.server_max_window_bits,
            client_max_window_bits=self.client_max_window_bits,
            compression_level=self.compression_level,
            compression_mem_level=self.compression_mem_level,
            compression_threshold=self.compression_threshold,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Server-wide settings. Sizes are bytes, times seconds.

    - ``max_header_size`` (16 KiB) and ``max_header_count`` (100): over either, 431.
    - ``max_body_size``: largest HTTP request body (10 MiB); over it, 413.
    - ``handshake_timeout``: time to receive a whole first request (10 s); then 408 and close.
    - ``keep_alive_timeout``: time allowed after a response for the next whole request (5 s);
      then an idle connection is closed, and one with a request begun gets 408 and is closed.
    - ``max_connections``: open connections allowed in this process, HTTP and WebSocket alike
      (50,000), counted as they are accepted; a connection over it is answered 503 (with
      ``Retry-After: 1``) and closed.
    - ``max_connections_per_ip``: open connections (HTTP and WebSocket) per client IP (off:
      behind a reverse proxy every client has the proxy's address); over it, 503.
    - ``shutdown_timeout``: how long graceful shutdown waits for handlers and on_close (10 s).
    - ``liveness_path`` (``"/livez"``) and ``readiness_path`` (``"/readyz"``): where the
      server answers its health checks, before the app's routes and hooks (see
      ``roost.server.health``); None switches one off.
    - ``metrics_path``: where the app answers Prometheus scrapes (None, the default: no
      metrics endpoint, and HTTP requests are not timed); see ``roost.metrics``.
    """

    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    handshake_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 50_000
    max_connections_per_ip: int | None = None
    shutdown_timeout: float = 10.0
    liveness_path: str | None = "/livez"
    readiness_path: str | None = "/readyz"
    metrics_path: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_header_size", "max_header_count", "max_connections"):
            _require(self, name, "size")
        _require(self, "max_body_size", "size", zero=True)
        _require(self, "max_connections_per_ip", "size", none=True)
        for name in ("handshake_timeout", "keep_alive_timeout"):
            _require(self, name, "time")
        _require(self, "shutdown_timeout", "time", zero=True)
        for name in ("liveness_path", "readiness_path", "metrics_path"):
            path = getattr(self, name)
            if path is not None and (not isinstance(path, str) or not path.startswith("/")):
                raise ValueError(f"{name} must be a path starting with '/' (or None), not {path!r}")
            if path is not None and "?" in path:
                raise ValueError(f"{name} must be a path without a query, not {path!r}")
        paths = [self.liveness_path, self.readiness_path, self.metrics_path]
        given = [path for path in paths if path is not None]
        if len(set(given)) != len(given):
            raise ValueError("liveness_path, readiness_path and metrics_path must differ")
