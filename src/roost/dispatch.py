"""Dispatch: the server's request handler. An HTTP request goes through CORS, the hooks that
apply to its route, the handler and the error handler, to a response; a WebSocket upgrade goes
through the handshake policy (``roost.admission``) to a 101 and a session.

Hooks are matched against the route that was chosen, never against the raw path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from roost.admission import Refused, admit
from roost.auth import AuthenticationNotConfiguredError
from roost.calls import Caller
from roost.hub.hub import Hub
from roost.metrics import Metrics
from roost.params import resolve
from roost.protocol.errors import HttpError
from roost.protocol.handshake import (
    accept_response,
    is_upgrade_request,
    select_deflate,
    select_subprotocol,
)
from roost.protocol.http import HttpRequest
from roost.requests import Request
from roost.responses import Response, StreamingResponse, plain, to_response
from roost.routes import DEFAULT_OPTIONS, HttpRoute, Routes
from roost.routing import canonical
from roost.server.http import HttpConnection
from roost.server.stats import ServerStats
from roost.session import Session
from roost.websocket import WebSocket

__all__ = ["Dispatcher"]

logger = logging.getLogger("roost")


class Dispatcher:
    """Answers the requests of one app: ``Server(dispatcher.handle)``."""

    __slots__ = ("calls", "hub", "metrics", "metrics_path", "routes", "stats")

    def __init__(
        self,
        routes: Routes,
        calls: Caller,
        hub: Hub,
        *,
        stats: ServerStats | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.routes = routes
        self.calls = calls
        self.hub = hub
        self.stats = stats or ServerStats()
        #: Answers ``metrics.path`` itself, before the routes and hooks (None: no metrics).
        self.metrics = metrics
        self.metrics_path = metrics.path if metrics is not None else None

    async def handle(self, request: HttpRequest, conn: HttpConnection) -> Awaitable[None] | None:
        """Answer one request on ``conn``. For an accepted WebSocket, return its session for
        the connection to run."""
        if request.upgrade or is_upgrade_request(request.headers):
            conn.route = ""  # counted as a handshake, not as an HTTP request
            return await self._upgrade(request, conn)
        if request.path == self.metrics_path and self.metrics is not None:
            conn.route = self.metrics_path
            status, headers, body = self.metrics.response(request.method)
            conn.send_response(status, headers, body, include_body=request.method != "HEAD")
            return None
        response = await self.respond(request, conn.client, conn)
        if isinstance(response, StreamingResponse):
            await response.write_to(conn, include_body=request.method != "HEAD")
            return None
        conn.send_response(
            response.status_code,
            response.headers.raw,
            response.body,
            include_body=request.method != "HEAD",
        )
        return None

    # -- HTTP --------------------------------------------------------------------------------

    async def respond(
        self, request: HttpRequest, client: tuple[str, int], conn: HttpConnection | None = None
    ) -> Response:
        """The response to a plain HTTP request from ``client`` (on ``conn``, which is told
        the route template that matched)."""
        routes = self.routes
        route, path_params, known = routes.http.match(request.method, request.path)
        if conn is not None and route is not None:
            conn.route = route.path
        req = Request.from_http(request, client, path_params)
        if routes.request_headers.raw:
            for name, value in routes.request_headers.raw:
                req.headers.append(name, value)
        cors = routes.cors
        if not routes.middlewares and cors is None and not routes.response_headers.raw:
            return await self._call_route(route, req, known)
        if cors is not None and cors.is_preflight(req):
            return cors.preflight(req)
        where: dict[str, Any] = {
            "path": canonical(request.path),
            "shape": route.shape if route is not None else None,
            "scopes": route.scopes if route is not None else (),
        }
        call = self.calls.call
        before = await routes.middlewares.run_before(req, call, **where)
        if isinstance(before, Response):
            response = before
        else:
            req = before
            response = await self._call_route(route, req, known)
        response = await routes.middlewares.run_after(req, response, call, **where)
        if cors is not None:
            cors.decorate(req, response)
        if routes.response_headers.raw and (where["path"] not in routes.response_headers_excluded):
            headers = response.headers
            for name, value in routes.response_headers.raw:
                if name not in headers:
                    headers.append(name, value)
        return response

    async def _call_route(self, route: HttpRoute | None, req: Request, known: bool) -> Response:
        routes = self.routes
        if route is None:
            if known:
                allow = ", ".join(routes.http.allowed(req.path))
                return plain(405, "Method Not Allowed", [("allow", allow)])
            return plain(404, "Not Found")
        options = route.options
        if options is not DEFAULT_OPTIONS:
            if options.auth_required:
                refused = await self._authenticate(route, req)
                if refused is not None:
                    return refused
            if options.const and route.const_response is not None:
                status, headers, body = route.const_response
                return Response(status, headers, body)
        try:
            kwargs = resolve(
                route.params,
                subject=req,
                query=req.query_params,
                path_params=req.path_params,
                global_deps=routes.global_dependencies,
                router_deps=route.router_dependencies,
            )
        except HttpError as exc:
            return plain(exc.status, exc.reason)
        try:
            result = await self.calls.call(route.handler, **kwargs)
            response = to_response(result)
        except HttpError as exc:  # a malformed request found by the handler (a bad form)
            return plain(exc.status, exc.reason)
        except Exception as exc:
            self.stats.handler_error(route.path, "handler")
            if routes.exception_handler is None:
                raise
            return to_response(await self.calls.call(routes.exception_handler, exc))
        if options is not DEFAULT_OPTIONS:
            if options.status_code is not None and not isinstance(result, Response):
                response.status_code = options.status_code
            if options.const and not isinstance(response, StreamingResponse):
                route.const_response = (
                    response.status_code,
                    response.headers.items(),
                    response.body,
                )
        return response

    async def _authenticate(self, route: HttpRoute, req: Request) -> Response | None:
        """Run the authentication handler for an ``auth_required`` route: None to go on
        (``req.identity`` set), or the 401 to answer."""
        handler = route.auth.authentication_handler if route.auth is not None else None
        handler = handler or self.routes.authentication_handler
        if handler is None:
            raise AuthenticationNotConfiguredError(f"route {route.path}")
        identity = await self.calls.call(handler.authenticate, req)
        if identity is None:
            return handler.unauthorized_response
        req.identity = identity
        return None

    # -- WebSocket ---------------------------------------------------------------------------

    async def _upgrade(self, request: HttpRequest, conn: HttpConnection) -> Awaitable[None] | None:
        try:
            admitted = await admit(self.routes, request, conn.client, self.calls.call)
        except Refused as refused:
            response = refused.response
            self.stats.handshake(response.status_code)
            conn.send_response(response.status_code, response.headers.raw, response.body)
            return None
        if conn.server.closing:  # shutdown began while the checks awaited: no new session
            self.stats.handshake(503)
            conn.send_response(
                503, [("content-type", "text/plain; charset=utf-8")], b"shutting down"
            )
            return None
        endpoint = admitted.endpoint
        key = request.headers.get("sec-websocket-key") or ""
        subprotocol = select_subprotocol(request.headers, endpoint.subprotocols)
        compression = endpoint.compression  # None when the endpoint turned it off
        deflate_params = deflate = None
        if compression is not None:
            deflate_params = select_deflate(request.headers, compression.settings)
            if deflate_params is not None:
                deflate = compression.codec(deflate_params)
        channel = conn.upgrade(
            accept_response(key, subprotocol=subprotocol, deflate=deflate_params),
            options=endpoint.options,
            deflate=deflate,
        )
        self.stats.handshake(101)
        ws = WebSocket(
            self.hub,
            channel,
            endpoint=endpoint.path,
            headers=request.headers,
            query_params=admitted.query,
            path_params=admitted.path_params,
            subprotocol=subprotocol,
            codec=endpoint.messages.codec,
            resume=admitted.resume,
        )
        request.headers.compact()  # kept as long as the connection: its pairs suffice
        return Session(endpoint, ws, channel, admitted.kwargs, calls=self.calls, hub=self.hub).run()
