"""Stand-ins for the server layer in hub tests: a channel that records what reaches it."""

from __future__ import annotations

from tests.timing import eventually

__all__ = ["FakeChannel", "eventually"]


class FakeChannel:
    """What the registry and hub need of a WebSocketChannel: ``send_nowait``, ``send_text``,
    ``open`` and ``close``."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    @property
    def open(self) -> bool:
        return self.closed is None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    def send_nowait(self, message: str | bytes, shared: object = None) -> bool:
        self.sent.append(message)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
