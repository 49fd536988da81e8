"""Brokers named by URL: ``redis://host:6379/0`` (also ``rediss://`` and ``unix://``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from roost.hub.broker import Broker

__all__ = ["make_broker", "redacted"]


def make_broker(broker: str | Broker | None) -> Broker | None:
    """A Broker from a URL (``redis://``, ``rediss://`` or ``unix://``), a Broker, or None.

    roost's own options ride in the URL's query (``?presence_ttl=30``); the rest of the URL
    is redis-py's.
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
    raise ValueError(f"unsupported broker {broker!r}: use a redis:// URL")


def redacted(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` query argument)
    replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(key, "***" if key == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    shown = urlunsplit(parts)
    if not parts.netloc and "://" in url:  # unix:///path keeps its slashes
        shown = shown.replace(":", "://", 1)
    return shown
