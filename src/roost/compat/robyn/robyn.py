"""Robyn's ``robyn.robyn`` (its compiled core): the request, response and header types."""

from __future__ import annotations

import enum

from roost import __version__
from roost.requests import Headers, QueryParams, Request, Url
from roost.responses import Response
from roost.types import Identity
from roost.websocket import WebSocket

__all__ = [
    "Headers",
    "HttpMethod",
    "Identity",
    "QueryParams",
    "Request",
    "Response",
    "Url",
    "WebSocketConnector",
    "get_version",
]

WebSocketConnector = WebSocket


class HttpMethod(enum.Enum):
    """The methods a route can have (``app.add_route(HttpMethod.GET, ...)`` takes names)."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"
    PATCH = "PATCH"
    OPTIONS = "OPTIONS"
    HEAD = "HEAD"
    TRACE = "TRACE"
    CONNECT = "CONNECT"


def get_version() -> str:
    """roost's version."""
    return __version__
