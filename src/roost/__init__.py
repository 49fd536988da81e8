"""roost: a fast async Python web framework for real-time apps."""

from roost.app import Robyn, Roost, SubRouter
from roost.auth import AuthenticationHandler, BearerGetter
from roost.calls import inline
from roost.hub.history import HistoryUnavailable, RoomHistory
from roost.protocol.errors import (
    ClientDisconnected,
    HandshakeError,
    InvalidResponse,
    InvalidState,
    ProtocolError,
    RoostError,
    WebSocketDisconnect,
)
from roost.requests import Client, Headers, QueryParams, Request, Url
from roost.responses import Response, StreamingResponse, html, jsonify
from roost.routes import WebSocketEndpoint
from roost.server.options import ServerOptions, WebSocketOptions
from roost.sse import SSEMessage, SSEResponse
from roost.staticfiles import serve_file, serve_html
from roost.typed import MessageError
from roost.types import Identity
from roost.websocket import WebSocket, WebSocketAdapter

__all__ = [
    "AuthenticationHandler",
    "BearerGetter",
    "Client",
    "ClientDisconnected",
    "HandshakeError",
    "Headers",
    "HistoryUnavailable",
    "Identity",
    "InvalidResponse",
    "InvalidState",
    "MessageError",
    "ProtocolError",
    "QueryParams",
    "Request",
    "Response",
    "Robyn",
    "RoomHistory",
    "Roost",
    "RoostError",
    "SSEMessage",
    "SSEResponse",
    "ServerOptions",
    "StreamingResponse",
    "SubRouter",
    "Url",
    "WebSocket",
    "WebSocketAdapter",
    "WebSocketDisconnect",
    "WebSocketEndpoint",
    "WebSocketOptions",
    "html",
    "inline",
    "jsonify",
    "serve_file",
    "serve_html",
]
__version__ = "0.1.0"
