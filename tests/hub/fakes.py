"""Stand-ins for the server layer in hub tests: a channel that records what reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class FakeChannel:
    """What the registry needs of a WebSocketChannel: ``send_nowait`` and ``close``."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_nowait(self, message: str | bytes, frame: bytes | None = None) -> bool:
        self.sent.append(message)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def eventually(check: Callable[[], bool | Awaitable[bool]], seconds: float = 10) -> None:
    """Poll ``check()`` (sync or async) until it is true, for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
