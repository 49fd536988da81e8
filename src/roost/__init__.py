"""roost: a fast async Python web framework for real-time apps."""

from roost.app import Robyn, Roost, SubRouter
from roost.protocol.errors import (
    ClientDisconnected,
    HandshakeError,
    InvalidState,
    ProtocolError,
    RoostError,
    WebSocketDisconnect,
)
from roost.requests import Client, Headers, QueryParams, Request
from roost.responses import Response
from roost.server.options import ServerOptions, WebSocketOptions
from roost.websocket import WebSocket, WebSocketAdapter, WebSocketEndpoint

__all__ = [
    "Client",
    "ClientDisconnected",
    "HandshakeError",
    "Headers",
    "InvalidState",
    "ProtocolError",
    "QueryParams",
    "Request",
    "Response",
    "Robyn",
    "Roost",
    "RoostError",
    "ServerOptions",
    "SubRouter",
    "WebSocket",
    "WebSocketAdapter",
    "WebSocketDisconnect",
    "WebSocketEndpoint",
    "WebSocketOptions",
]
__version__ = "0.1.0"
