"""One WebSocket connection's life in the app: it joins the hub, runs on_connect, then the
handler, then (for an endpoint with typed handlers) the loop that receives, decodes and
dispatches its typed messages, and runs on_close once the connection has ended, on every
close path.

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
from roost.typed import Error, InvalidMessage, MessageError, Reply
from roost.websocket import WebSocket

logger = logging.getLogger("roost")
session_logger = logging.getLogger("roost.session")


class Session:
    """Runs one connection: registers it, runs on_connect then the handler, and runs on_close
    as soon as the connection has ended, on every close path.

    Once the handler has returned, an endpoint with typed handlers (``.on(Type)``) goes on
    receiving: each message is decoded and passed to its type's handler (see
    ``dispatch_messages``). Close codes: the handler returns → 1000; it raises → 1011
    (logged); it is cancelled by a shutdown → 1001. A handler still running ``close_timeout``
    seconds after its connection ended is cancelled.
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
        self.hub.add(ws.id, ws.endpoint, channel, ws.resume)
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
            if endpoint.messages and channel.open:
                await self.dispatch_messages()
                return
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

    async def dispatch_messages(self) -> None:
        """Receive until the connection ends: decode each message into one of the endpoint's
        types and call its handler with (websocket, message). A message with a ``ref`` is
        answered with a ``Reply`` of the handler's return value; an invalid message, a
        ``MessageError`` or any other exception of the handler with an ``Error`` (the last
        logged, answered as ``internal_error``). After ``max_errors`` invalid messages the
        connection is closed with the endpoint's ``close_code``."""
        table, ws, channel = self.endpoint.messages, self.ws, self.channel
        # Looked up once: this loop runs for every message.
        handlers, decode, recv, call = table.handlers, table.decode, channel.recv, self.calls.call
        invalid = 0
        while True:
            data = await recv()
            try:
                message, ref = decode(data)
            except InvalidMessage as exc:
                invalid += 1
                await ws.send(exc.error)
                if table.max_errors is not None and invalid >= table.max_errors:
                    channel.close(table.close_code, "too many invalid messages")
                    return
                continue
            try:
                result = await call(handlers[type(message)], ws, message)
                if ref is not None:
                    await ws.send(Reply(ref, result))
            except MessageError as exc:
                await ws.send(Error(exc.code, exc.message, None, ref))
            except (WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception:
                name = type(message).__name__
                channel.stats.handler_error(self.endpoint.path, f"on({name})")
                logger.exception("WebSocket handler of %s for %s raised", name, self.endpoint.path)
                await ws.send(Error("internal_error", "internal error", None, ref))

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
