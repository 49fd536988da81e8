"""Brokers named by URL: ``redis://host:6379/0`` (also ``rediss://`` and ``unix://``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roost.hub.broker import Broker
from roost.hub.credentials import redacted

__all__ = ["make_broker"]


def make_broker(broker: str | Broker | None) -> Broker | None:
    """A Broker from a URL (``redis://``, ``rediss://`` or ``unix://``), a Broker, or None.

    roost's own options ride in the URL's query (``?presence_ttl=30``); the rest of the URL
    is redis-py's: a password (``redis://:secret@host:6379/0``, or ``user:secret@``),
    ``rediss://`` for TLS, and TLS options such as ``?ssl_ca_certs=/path/ca.pem``.
    """
    if broker is None or isinstance(broker, Broker):
        return broker
    if broker.startswith(("redis://", "rediss://", "unix://")):
        from roost.hub.redis import RedisBroker  # redis-py is an optional dependency

        parts = urlsplit(broker)
        query = dict(parse_qsl(parts.query))
        ttl = float(query.pop("presence_ttl", 30.0))
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisBroker(url, presence_ttl=ttl)
    raise ValueError(f"unsupported broker {redacted(broker)!r}: use a redis:// URL")
