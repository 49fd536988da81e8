"""The server's own counters, kept as plain integers where things happen and read by
``roost.metrics`` when it is scraped: handshakes, refused connections, close codes, the
totals of ended WebSocket connections, handler errors and HTTP requests. Counting costs an
integer increment; nothing here knows about Prometheus.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["HTTP_BUCKETS", "Histogram", "ServerStats", "close_code_label"]

#: Upper bounds (seconds) of the HTTP request duration histogram.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def close_code_label(code: int) -> str:
    """A close code as a label with a bounded set of values: the codes RFC 6455 and IANA
    define (1000-2999) as themselves, the application ranges as ``3xxx`` and ``4xxx``."""
    if 1000 <= code < 3000:
        return str(code)
    if 3000 <= code < 5000:
        return f"{code // 1000}xxx"
    return "other"


class Histogram:
    """Observations counted in buckets (``bounds``, ascending upper bounds; one more bucket
    for what lies above the last), with their count and sum."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)  # not cumulative
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound as Prometheus writes it, observations at or under it), ``+Inf`` last."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


class ServerStats:
    """Counters of one server (one process). Live WebSocket connections keep their own
    message and byte counts; a connection adds them here when it ends (``channel_ended``)."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "close_received",
        "close_sent",
        "dropped",
        "handler_errors",
        "handshakes",
        "http_durations",
        "http_requests",
        "messages_in",
        "messages_out",
        "outbound_high_water",
        "refused",
        "slow_consumer_closes",
    )

    def __init__(self) -> None:
        #: (outcome, status) -> handshakes: ("accepted", "101") or ("rejected", "404"), ...
        self.handshakes: dict[tuple[str, str], int] = {}
        #: limit ("max_connections", "max_connections_per_ip") -> connections answered 503
        self.refused: dict[str, int] = {}
        #: close code label -> close frames sent / received
        self.close_sent: dict[str, int] = {}
        self.close_received: dict[str, int] = {}
        #: (endpoint or route, callback) -> exceptions raised by app code
        self.handler_errors: dict[tuple[str, str], int] = {}
        #: (route template, method, status) -> requests
        self.http_requests: dict[tuple[str, str, str], int] = {}
        #: (route template, method) -> request durations in seconds
        self.http_durations: dict[tuple[str, str], Histogram] = {}
        self.slow_consumer_closes = 0
        # Totals of the WebSocket connections that have ended.
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped = 0
        self.outbound_high_water = 0

    @staticmethod
    def _add(table: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
        table[key] = table.get(key, 0) + 1

    def handshake(self, status: int) -> None:
        """A WebSocket handshake was answered with ``status`` (101: accepted)."""
        self._add(self.handshakes, ("accepted" if status == 101 else "rejected", str(status)))

    def refusal(self, limit: str) -> None:
        """A connection over ``limit`` was refused."""
        self.refused[limit] = self.refused.get(limit, 0) + 1

    def closed(self, code: int, *, sent: bool) -> None:
        """A close frame with ``code`` was sent (``sent``) or received."""
        table = self.close_sent if sent else self.close_received
        label = close_code_label(code)
        table[label] = table.get(label, 0) + 1

    def handler_error(self, where: str, callback: str) -> None:
        """App code (``callback``: handler, on_connect, on_close) for ``where`` raised."""
        self._add(self.handler_errors, (where, callback))

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """An HTTP request to ``route`` (a template) was answered with ``status``."""
        key = (route, method, str(status))
        self.http_requests[key] = self.http_requests.get(key, 0) + 1
        histogram = self.http_durations.get((route, method))
        if histogram is None:
            histogram = self.http_durations[(route, method)] = Histogram(HTTP_BUCKETS)
        histogram.observe(seconds)

    def channel_ended(
        self,
        *,
        messages_in: int,
        messages_out: int,
        bytes_in: int,
        bytes_out: int,
        dropped: int,
        high_water: int,
    ) -> None:
        """Keep the totals of a WebSocket connection that has ended."""
        self.messages_in += messages_in
        self.messages_out += messages_out
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.dropped += dropped
        if high_water > self.outbound_high_water:
            self.outbound_high_water = high_water
