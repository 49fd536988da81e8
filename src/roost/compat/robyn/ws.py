"""Robyn's ``robyn.ws``."""

from roost.protocol.errors import WebSocketDisconnect
from roost.websocket import WebSocket, WebSocketAdapter

__all__ = ["WebSocket", "WebSocketAdapter", "WebSocketDisconnect"]
