"""Stand-ins for the helpers the guide uses but leaves undefined.

They behave like small real services so that the examples can be run and tested: a fixed
demo token and API key are accepted, everything else is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

DEMO_TOKEN = "demo-token"
DEMO_API_KEY = "demo-key"


def authenticate_token(token: str | None) -> bool:
    """Whether ``token`` is a valid session token."""
    return token == DEMO_TOKEN


def validate_api_key(api_key: str | None) -> bool:
    """Whether ``api_key`` is a valid API key."""
    return api_key == DEMO_API_KEY


_counter = itertools.count(1)


async def get_stream_data() -> dict[str, Any]:
    """The next item of a data stream: a counter and a timestamp, about ten a second."""
    await asyncio.sleep(0.1)
    return {"seq": next(_counter), "time": time.time()}


class DatabaseConnection:
    """An in-memory message store."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def save_message(self, message: str, connection_id: str) -> int:
        self.messages.append((connection_id, message))
        return len(self.messages)


class MetricsCollector:
    """Counts events by name."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def increment(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


class RedisCache:
    """A dict standing in for a cache server."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def invalidate(self, key: str) -> None:
        self.data.pop(key, None)


class JWTAuthService:
    """Accepts the demo token only."""

    def verify_websocket_token(self, token: str | None) -> bool:
        return authenticate_token(token)
