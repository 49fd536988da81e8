"""One WebSocket connection's life in the app: it joins the hub, runs on_connect, then the
handler, and runs on_close once the connection has ended, on every close path.

When it ends, one line goes to the ``roost.session`` logger at INFO (unless that logger is
off): the endpoint, the connection id, the client's address, the duration in seconds, the
messages received and sent, the close code and who began the closing (``client`` or
``server``), as text and as the record's fields ``endpoint``, ``id``, ``client``,
``duration``, ``messages_in``, ``messages_out``, ``close_code``, ``closed_by``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from roost.calls import Caller
from roost.hub.hub import Hub
from roost.protocol.errors import WebSocketDisconnect
from roost.routes import WebSocketEndpoint
from roost.server.websocket import WebSocketChannel
from roost.websocket import WebSocket

logger = logging.getLogger("roost")
session_logger = logging.getLogger("roost.session")


class Session:
    """Runs one connection: registers it, runs on_connect then the handler, and runs on_close
    as soon as the connection has ended, on every close path.

    Close codes: the handler returns → 1000; it raises → 1011 (logged); it is cancelled by a
    shutdown → 1001. A handler still running ``close_timeout`` seconds after its connection
    ended is cancelled.
    """

    __slots__ = (
        "_deadline",
        "_opened",
        "calls",
        "channel",
        "endpoint",
        "hub",
        "in_handler",
        "kwargs",
        "task",
        "ws",
    )

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        ws: WebSocket,
        channel: WebSocketChannel,
        kwargs: dict[str, Any],
        *,
        calls: Caller,
        hub: Hub,
    ) -> None:
        self.calls = calls
        self.hub = hub
        self.endpoint = endpoint
        self.ws = ws
        self.channel = channel
        self.kwargs = kwargs
        self.task: asyncio.Task[Any] | None = None
        self.in_handler = True
        self._deadline: asyncio.TimerHandle | None = None
        self._opened = time.monotonic()

    def _fill(self, name: str) -> dict[str, Any]:
        args: dict[str, Any] = self.kwargs[name]
        for p in self.endpoint.plans[name]:
            if p.source == "subject":
                args[p.name] = self.ws
        return args

    async def run(self) -> None:
        """The connection's task: on_connect, then the handler, then the close."""
        channel, endpoint, ws = self.channel, self.endpoint, self.ws
        # Runs in the connection's own task, which graceful shutdown already waits for.
        self.task = asyncio.current_task()
        self.hub.add(ws.id, ws.endpoint, channel)
        channel.add_lost_callback(self.ended)
        callback = "on_connect"
        try:
            if endpoint.on_connect_handler is not None and channel.open:
                result = await self.calls.call(
                    endpoint.on_connect_handler, **self._fill("on_connect")
                )
                if isinstance(result, str) and channel.open:
                    await channel.send_text(result)
            callback = "handler"
            if channel.open:
                await self.calls.call(endpoint.handler, **self._fill("handler"))
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            channel.close(1001 if channel.shutting_down else 1011, "")
            raise
        except Exception:
            channel.stats.handler_error(endpoint.path, callback)
            logger.exception(
                "WebSocket %s for %s raised; closing with 1011", callback, endpoint.path
            )
            channel.close(1011, "internal error")
        else:
            channel.close(1000, "")
        finally:
            self.in_handler = False
            if self._deadline is not None:  # it would keep this session alive until it runs
                self._deadline.cancel()
                self._deadline = None

    def ended(self) -> None:
        """The TCP connection is gone: forget it, run on_close, bound the handler's life."""
        self.hub.remove(self.ws.id)
        loop = self.channel.loop
        if session_logger.isEnabledFor(logging.INFO):
            self._log_end(time.monotonic() - self._opened)
        self.channel.track(loop.create_task(self.run_on_close()))
        if self.in_handler:
            self._deadline = loop.call_later(
                self.endpoint.options.close_timeout, self._cancel_if_running
            )

    def _log_end(self, duration: float) -> None:
        channel = self.channel
        host, port = channel.client
        client = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        code = channel.close_code
        session_logger.info(
            "session ended %s id=%s client=%s duration=%.3fs in=%d out=%d code=%s closed_by=%s",
            self.endpoint.path,
            self.ws.id,
            client,
            duration,
            channel.messages_in,
            channel.messages_out,
            code,
            channel.closed_by,
            extra={
                "endpoint": self.endpoint.path,
                "id": self.ws.id,
                "client": client,
                "duration": round(duration, 6),
                "messages_in": channel.messages_in,
                "messages_out": channel.messages_out,
                "close_code": code,
                "closed_by": channel.closed_by,
            },
        )

    def _cancel_if_running(self) -> None:
        self._deadline = None
        if self.in_handler and self.task is not None and not self.task.done():
            self.task.cancel()

    async def run_on_close(self) -> None:
        """Run the endpoint's on_close; a string it returns is sent if the connection still
        can carry it (it cannot once the connection has ended)."""
        func = self.endpoint.on_close_handler
        if func is None:
            return
        try:
            result = await self.calls.call(func, **self._fill("on_close"))
            if isinstance(result, str) and self.ws.is_open:
                await self.ws.send_text(result)
        except WebSocketDisconnect:
            pass
        except Exception:
            self.channel.stats.handler_error(self.endpoint.path, "on_close")
            logger.exception("on_close for %s raised", self.endpoint.path)
