"""The Prometheus endpoint: roost's own counters (``roost.server.stats``, the live
connections, the hub's registry and broker) read when the endpoint is scraped, written in
the Prometheus text format with ``prometheus-client`` (the ``metrics`` extra).

Counting happens where things happen, as plain integer increments that roost keeps with the
metrics on or off; only timing HTTP requests is switched on with the metrics. Nothing calls
``prometheus-client`` per message: a scrape reads the integers.

Under ``--processes N`` every worker writes its values to a file in a directory the
supervisor gives it (``ROOST_METRICS_DIR``) once a second and when it stops; a scrape, which
reaches one worker, answers the sum over the workers: that worker's own values read at once,
the others' as of their last write (at most ``SNAPSHOT_INTERVAL`` seconds old). Counters of
workers that have exited stay in the sum; their gauges do not.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from roost.hub.hub import Hub
from roost.hub.registry import DELIVERY_BUCKETS
from roost.server.serve import Server
from roost.server.stats import HTTP_BUCKETS, Histogram
from roost.server.websocket import WebSocketChannel

__all__ = [
    "DEFAULT_METRICS_PATH",
    "FAMILIES",
    "METRICS_DIR_ENV",
    "SNAPSHOT_INTERVAL",
    "Metrics",
    "MetricsUnavailable",
    "metrics_available",
]

#: Where ``--metrics`` puts the endpoint.
DEFAULT_METRICS_PATH = "/metrics"
#: The environment variable naming the directory where workers write their values.
METRICS_DIR_ENV = "ROOST_METRICS_DIR"
#: Seconds between two writes of a worker's values under ``--processes N``.
SNAPSHOT_INTERVAL = 1.0

#: name -> (type, help, label names). Counter names are given without ``_total``.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "roost_websocket_connections": (
        "gauge",
        "Open WebSocket connections, per endpoint.",
        ("endpoint",),
    ),
    "roost_websocket_handshakes": (
        "counter",
        "WebSocket handshakes answered, by outcome (accepted, rejected) and HTTP status.",
        ("outcome", "status"),
    ),
    "roost_connections_refused": (
        "counter",
        "TCP connections answered 503 for being over a connection limit, by limit.",
        ("limit",),
    ),
    "roost_websocket_messages_received": ("counter", "WebSocket messages received.", ()),
    "roost_websocket_messages_sent": (
        "counter",
        "WebSocket messages sent or queued for sending.",
        (),
    ),
    "roost_websocket_received_bytes": (
        "counter",
        "Bytes read from WebSocket connections (frames as they came, all kinds).",
        (),
    ),
    "roost_websocket_sent_bytes": (
        "counter",
        "Bytes of the message frames sent or queued on WebSocket connections.",
        (),
    ),
    "roost_broadcast_deliveries": (
        "histogram",
        "Local connections each broadcast reached; its count is the number of broadcasts.",
        (),
    ),
    "roost_websocket_slow_consumer_closes": (
        "counter",
        "Connections closed with 1008 for an outbound buffer over its limit.",
        (),
    ),
    "roost_websocket_dropped_messages": (
        "counter",
        "Messages not queued for a slow consumer whose policy is drop.",
        (),
    ),
    "roost_websocket_outbound_buffer_high_water_bytes": (
        "gauge",
        "The largest outbound buffer of any WebSocket connection so far, in bytes.",
        (),
    ),
    "roost_handler_errors": (
        "counter",
        "Exceptions raised by app code, by endpoint (or route) and callback.",
        ("endpoint", "callback"),
    ),
    "roost_websocket_close_codes_sent": (
        "counter",
        "Close frames sent, by code (3xxx and 4xxx for application codes).",
        ("code",),
    ),
    "roost_websocket_close_codes_received": (
        "counter",
        "Close frames received, by code (3xxx and 4xxx for application codes).",
        ("code",),
    ),
    "roost_http_requests": (
        "counter",
        "HTTP requests answered, by route template, method and status.",
        ("route", "method", "status"),
    ),
    "roost_http_request_duration_seconds": (
        "histogram",
        "Time from a whole request to its response written, by route template and method.",
        ("route", "method"),
    ),
    "roost_broker_published": ("counter", "Hub messages handed to the broker.", ()),
    "roost_broker_dropped": (
        "counter",
        "Hub messages the broker dropped (link down, queue full).",
        (),
    ),
    "roost_broker_outages": ("counter", "Times the broker's link was lost.", ()),
    "roost_broker_reconnects": ("counter", "Times the broker's link came back.", ()),
    "roost_broker_queued_bytes": (
        "gauge",
        "Bytes waiting to go to the broker (the relay link, or the Redis send queue).",
        (),
    ),
}

#: The highest value over the workers, not the sum.
_MAXED = {"roost_websocket_outbound_buffer_high_water_bytes"}

# family -> label values -> a number, or for a histogram [non-cumulative buckets, sum]
Values = dict[str, dict[tuple[str, ...], Any]]


class MetricsUnavailable(RuntimeError):
    """The metrics are switched on but ``prometheus-client`` is not installed."""


def _keyed(table: Mapping[Any, int]) -> dict[tuple[str, ...], Any]:
    """``table``'s counts keyed by tuples of label values (a lone label's value in a tuple)."""
    return {key if isinstance(key, tuple) else (key,): n for key, n in table.items()}


def _histogram(histogram: Histogram) -> list[Any]:
    return [list(histogram.buckets), histogram.sum]


class Metrics:
    """Answers scrapes at ``path`` with the values of ``server`` and ``hub`` (see
    ``attach``) and, with ``directory``, those the other workers wrote there."""

    def __init__(self, path: str, *, directory: str | None = None) -> None:
        try:
            import prometheus_client
            import prometheus_client.core
        except ImportError:
            raise MetricsUnavailable(
                "the metrics endpoint needs prometheus-client: pip install 'roost[metrics]'"
            ) from None
        self._prometheus = prometheus_client
        self.path = path
        self.directory = directory
        self._server: Server | None = None
        self._hub: Hub | None = None
        self._writer: asyncio.TimerHandle | None = None

    def attach(self, server: Server, hub: Hub) -> None:
        """Read ``server``'s and ``hub``'s values; with a directory, write them there every
        ``SNAPSHOT_INTERVAL`` seconds from now on."""
        self._server = server
        self._hub = hub
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
            self._write()

    def detach(self) -> None:
        """Stop writing (after writing the last values, with a directory)."""
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        if self.directory is not None and self._server is not None:
            self._save()

    # -- values ------------------------------------------------------------------------------

    def values(self) -> Values:
        """This process's values now."""
        server, hub = self._server, self._hub
        out: Values = {name: {} for name in FAMILIES}
        if server is None or hub is None:
            return out
        stats = server.stats
        live: set[WebSocketChannel] = server.channels
        messages_in, messages_out = stats.messages_in, stats.messages_out
        bytes_in, bytes_out = stats.bytes_in, stats.bytes_out
        dropped, high = stats.dropped, stats.outbound_high_water
        for channel in list(live):
            messages_in += channel.messages_in
            messages_out += channel.messages_out
            bytes_in += channel.bytes_in
            bytes_out += channel.bytes_out
            dropped += channel.dropped
            high = max(high, channel.high_water, channel.buffered)
        for endpoint, count in hub.registry.counts().items():
            out["roost_websocket_connections"][(endpoint,)] = count
        out["roost_websocket_handshakes"] = _keyed(stats.handshakes)
        out["roost_connections_refused"] = _keyed(stats.refused)
        out["roost_websocket_messages_received"][()] = messages_in
        out["roost_websocket_messages_sent"][()] = messages_out
        out["roost_websocket_received_bytes"][()] = bytes_in
        out["roost_websocket_sent_bytes"][()] = bytes_out
        out["roost_broadcast_deliveries"][()] = _histogram(hub.registry.deliveries)
        out["roost_websocket_slow_consumer_closes"][()] = stats.slow_consumer_closes
        out["roost_websocket_dropped_messages"][()] = dropped
        out["roost_websocket_outbound_buffer_high_water_bytes"][()] = high
        out["roost_handler_errors"] = _keyed(stats.handler_errors)
        out["roost_websocket_close_codes_sent"] = _keyed(stats.close_sent)
        out["roost_websocket_close_codes_received"] = _keyed(stats.close_received)
        out["roost_http_requests"] = _keyed(stats.http_requests)
        out["roost_http_request_duration_seconds"] = {
            key: _histogram(h) for key, h in stats.http_durations.items()
        }
        broker = hub.broker
        out["roost_broker_published"][()] = hub.published
        out["roost_broker_dropped"][()] = broker.dropped if broker is not None else 0
        out["roost_broker_outages"][()] = broker.outages if broker is not None else 0
        out["roost_broker_reconnects"][()] = broker.reconnects if broker is not None else 0
        out["roost_broker_queued_bytes"][()] = broker.queued_bytes if broker is not None else 0
        return out

    def _file(self, pid: int) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, f"{pid}.json")

    def _save(self) -> None:
        values = self.values()
        data = {name: [[list(k), v] for k, v in series.items()] for name, series in values.items()}
        path = self._file(os.getpid())
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError:
            pass  # the directory went with the supervisor: nothing to share any more

    def _write(self) -> None:
        self._save()
        if self._server is not None:
            self._writer = self._server.loop.call_later(SNAPSHOT_INTERVAL, self._write)

    def _others(self) -> Iterator[tuple[bool, Values]]:
        """(whether that worker is alive, its last values) for the other workers."""
        if self.directory is None:
            return
        me = f"{os.getpid()}.json"
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if not name.endswith(".json") or name == me:
                continue
            try:
                pid = int(name[:-5])
                with open(os.path.join(self.directory, name)) as f:
                    raw = json.load(f)
            except (OSError, ValueError):
                continue
            yield (
                _alive(pid),
                {family: {tuple(k): v for k, v in series} for family, series in raw.items()},
            )

    def merged(self) -> Values:
        """The values over every worker (this process's alone without a directory)."""
        total = self.values()
        for alive, values in self._others():
            for family, series in values.items():
                if family not in total:
                    continue
                kind = FAMILIES[family][0]
                if kind == "gauge" and not alive:
                    continue
                mine = total[family]
                for key, value in series.items():
                    if key not in mine:
                        mine[key] = value
                    elif kind == "histogram":
                        buckets = [a + b for a, b in zip(mine[key][0], value[0], strict=False)]
                        mine[key] = [buckets, mine[key][1] + value[1]]
                    elif family in _MAXED:
                        mine[key] = max(mine[key], value)
                    else:
                        mine[key] = mine[key] + value
        return total

    # -- the endpoint ------------------------------------------------------------------------

    def render(self) -> bytes:
        """The values over every worker in the Prometheus text format."""
        pc = self._prometheus
        families: list[Any] = []
        for name, series in self.merged().items():
            kind, doc, labels = FAMILIES[name]
            if kind == "counter":
                family: Any = pc.core.CounterMetricFamily(name, doc, labels=labels)
                for key, value in sorted(series.items()):
                    family.add_metric(list(key), value)
            elif kind == "gauge":
                family = pc.core.GaugeMetricFamily(name, doc, labels=labels)
                for key, value in sorted(series.items()):
                    family.add_metric(list(key), value)
            else:
                family = pc.core.HistogramMetricFamily(name, doc, labels=labels)
                for key, (buckets, total) in sorted(series.items()):
                    histogram = Histogram(_bounds(name))
                    histogram.buckets = list(buckets)
                    family.add_metric(list(key), histogram.cumulative(), total)
            families.append(family)

        class Collector:
            def collect(self) -> list[Any]:
                return families

        registry = pc.CollectorRegistry(auto_describe=False)
        registry.register(Collector())
        return bytes(pc.generate_latest(registry))

    def response(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) answering a scrape with ``method``."""
        if method not in ("GET", "HEAD"):
            return (
                405,
                [("allow", "GET, HEAD"), ("content-type", "text/plain")],
                b"Method Not Allowed",
            )
        headers = [
            ("content-type", self._prometheus.CONTENT_TYPE_LATEST),
            ("cache-control", "no-store"),
        ]
        return 200, headers, self.render()


def metrics_available() -> bool:
    """Whether ``prometheus-client`` can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _bounds(name: str) -> tuple[float, ...]:
    if name == "roost_broadcast_deliveries":
        return tuple(float(b) for b in DELIVERY_BUCKETS)
    return HTTP_BUCKETS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
