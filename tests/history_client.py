"""A resuming client for rooms with history, over the `websockets` library: what a browser
page does with roost's client script, for tests that check "exactly once, in order".

It keeps the last position it saw per room, reconnects with ``roost_resume``, records each
message's (room, epoch, offset, data) and every notice roost sends (``joined``,
``recovered``, ``not_recovered``), and never drops or reorders anything itself, so a test sees
exactly what the server delivered (duplicates included).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import websockets


@dataclass
class ResumingClient:
    """Connect with ``connect(url)``; read with ``read_until(...)``."""

    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    messages: list[tuple[str, str, int, str]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)
    ws: websockets.ClientConnection | None = None

    def url_with_resume(self, url: str) -> str:
        if not self.positions:
            return url
        value = json.dumps({room: [e, o] for room, (e, o) in self.positions.items()})
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}roost_resume={urllib.parse.quote(value)}"

    async def connect(self, url: str, **kwargs: Any) -> websockets.ClientConnection:
        self.ws = await websockets.connect(self.url_with_resume(url), **kwargs)
        return self.ws

    def take(self, raw: str | bytes) -> dict[str, Any] | None:
        """Record one message from the server; the parsed roost envelope or notice, if any."""
        if isinstance(raw, bytes):
            self.other.append(raw)
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            self.other.append(raw)
            return None
        if not isinstance(value, dict) or "roost" not in value:
            self.other.append(value)
            return None
        if value["roost"] == "message":
            room, epoch, offset = value["room"], value["epoch"], value["offset"]
            self.messages.append((room, epoch, offset, value.get("data")))
            self.positions[room] = (epoch, offset)
        elif value["roost"] in ("joined", "recovered", "not_recovered"):
            self.notices.append(value)
            self.positions[value["room"]] = (value["epoch"], value["offset"])
        else:
            self.other.append(value)
        return value

    async def recv(self) -> dict[str, Any] | None:
        assert self.ws is not None
        return self.take(await self.ws.recv())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def data(self, room: str) -> list[str]:
        return [d for r, _, _, d in self.messages if r == room]
