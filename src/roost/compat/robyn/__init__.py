"""Robyn's API on roost: ``from roost.compat.robyn import Robyn, Request, ...`` (or, after
``roost.compat.robyn_shim.install()``, ``from robyn import ...``) runs a Robyn app on roost.

Most names are roost's own, which follow Robyn's semantics; this package adds Robyn's
spellings where roost's differ (``SSEResponse`` passes formatted strings through,
``StreamingResponse`` defaults to an event stream, ``serve_file`` is an attachment,
``ALLOW_CORS``, Robyn's command-line flags). docs/migrating-from-robyn.md lists what differs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

from roost.app import Roost
from roost.app import SubRouter as _SubRouter
from roost.auth import AuthenticationHandler, BearerGetter
from roost.compat.robyn import status_codes
from roost.compat.robyn.argument_parser import Config
from roost.compat.robyn.responses import (
    SSEMessage,
    SSEResponse,
    StreamingResponse,
    html,
    serve_file,
    serve_html,
)
from roost.openapi import OpenAPI
from roost.protocol.errors import WebSocketDisconnect
from roost.requests import Headers, QueryParams, Request, Url
from roost.responses import Response, jsonify
from roost.testing import TestClient
from roost.types import JsonBody, RequestBody, RequestMethod
from roost.websocket import WebSocket, WebSocketAdapter

__all__ = [
    "ALLOW_CORS",
    "AuthenticationHandler",
    "BearerGetter",
    "Config",
    "Headers",
    "JsonBody",
    "QueryParams",
    "Request",
    "RequestBody",
    "RequestMethod",
    "RequestURL",
    "Response",
    "Robyn",
    "SSEMessage",
    "SSEResponse",
    "StreamingResponse",
    "SubRouter",
    "TestClient",
    "Url",
    "WebSocket",
    "WebSocketAdapter",
    "WebSocketConnector",
    "WebSocketDisconnect",
    "html",
    "jsonify",
    "serve_file",
    "serve_html",
    "status_codes",
]

logger = logging.getLogger("roost")

RequestURL = Url
#: What Robyn's WebSocket handlers receive is roost's WebSocket.
WebSocketConnector = WebSocket


class Robyn(Roost):
    """A Robyn app on roost: ``Robyn(__file__)``.

    As in Robyn, the OpenAPI document is served at ``/openapi.json`` and ``/docs`` unless
    ``--disable-openapi`` is given (``openapi`` may carry its ``info``), and ``start()`` reads
    Robyn's command-line flags and ``ROBYN_HOST``/``ROBYN_PORT``. Keyword arguments Robyn does
    not have are roost's (``server_options``, ``broker``, ``origins``, ``sync_threads``).
    """

    def __init__(
        self,
        file_object: str,
        config: Config | None = None,
        openapi_file_path: str | None = None,
        openapi: OpenAPI | None = None,
        dependencies: Any = None,
        **roost_options: Any,
    ) -> None:
        self.config = config if config is not None else Config.from_argv(sys.argv[1:])
        if openapi_file_path is not None:
            logger.warning("openapi_file_path is not supported: the document is generated")
        super().__init__(
            file_object,
            openapi=False if self.config.disable_openapi else (openapi or OpenAPI()),
            **roost_options,
        )

    def start(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        _check_port: bool = True,
        client_timeout: float | None = None,
        keep_alive_timeout: float | None = None,
        **roost_options: Any,
    ) -> None:
        """Serve until stopped, as ``Roost.start``: ``ROBYN_HOST``/``ROBYN_PORT`` override the
        arguments, and Robyn's flags are read (``--processes``, ``--log-level``, ``--dev`` as
        roost's ``--reload``); ``--workers``, ``--fast`` and ``--open-browser`` are accepted
        and ignored. ``client_timeout`` sets ``ServerOptions.handshake_timeout`` (the time to
        send a whole request) and ``keep_alive_timeout`` ``ServerOptions.keep_alive_timeout``;
        left out, roost's defaults apply (10 s and 5 s)."""
        options = self.server_options
        if client_timeout is not None:
            options = dataclasses.replace(options, handshake_timeout=float(client_timeout))
        if keep_alive_timeout is not None:
            options = dataclasses.replace(options, keep_alive_timeout=float(keep_alive_timeout))
        self.server_options = options
        host = os.environ.get("ROBYN_HOST", host)
        port = int(os.environ.get("ROBYN_PORT", port))
        sys.argv[1:] = self.config.roost_argv(sys.argv[1:])
        super().start(host, port, **roost_options)


class SubRouter(_SubRouter):
    """Robyn's SubRouter: ``SubRouter("/prefix")``, ``SubRouter(__file__, prefix="/x")``;
    ``config`` and ``openapi`` are accepted and ignored (the app's apply)."""

    def __init__(
        self,
        *args: str,
        prefix: str = "",
        tags: list[str] | None = None,
        config: Config | None = None,
        openapi: OpenAPI | None = None,
        file_object: str | None = None,
    ) -> None:
        super().__init__(*args, prefix=prefix, tags=tags, file_object=file_object)


def ALLOW_CORS(
    app: Roost, origins: list[str] | str, headers: list[str] | str | None = None
) -> None:
    """Let browsers on ``origins`` call ``app``, with roost's CORS: ``"*"`` answers any origin
    without credentials; a list of origins is answered with credentials allowed."""
    listed = [origins] if isinstance(origins, str) else list(origins)
    allowed = ["Content-Type", "Authorization"]
    if isinstance(headers, str):
        allowed = [h.strip() for h in headers.split(",") if h.strip()]
    elif headers:
        allowed += [h for h in headers if h not in allowed]
    app.add_cors(listed, headers=allowed, allow_credentials="*" not in listed)
