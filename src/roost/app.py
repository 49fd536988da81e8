"""Roost (also exported as Robyn): routes, WebSocket endpoints, dependencies, and serving."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from roost.calls import DEFAULT_SYNC_THREADS, Caller
from roost.hub.broker import Broker
from roost.hub.hub import Hub
from roost.middleware import CORS, DEFAULT_CORS_METHODS, Middlewares
from roost.origins import OriginPolicy
from roost.params import plan, resolve
from roost.protocol.deflate import PerMessageDeflate
from roost.protocol.errors import ClientDisconnected, HandshakeError, HttpError
from roost.protocol.handshake import (
    accept_response,
    is_upgrade_request,
    select_deflate,
    select_subprotocol,
    validate_request,
)
from roost.protocol.http import HttpRequest
from roost.requests import Client, QueryParams, Request
from roost.responses import Response, StreamingResponse, plain, to_response
from roost.routing import Pattern, Router, canonical, normalize
from roost.server.connection import HttpConnection, WebSocketChannel
from roost.server.options import ServerOptions, WebSocketOptions
from roost.server.serve import Server
from roost.session import Session
from roost.staticfiles import directory_handler
from roost.websocket import WebSocket, WebSocketEndpoint

logger = logging.getLogger("roost")

Handler = Callable[..., Any]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class HttpRoute:
    """One HTTP handler, its resolution plan, and what its hooks are matched against: the
    route's shape and the routers (``scopes``) it was registered through."""

    __slots__ = ("handler", "params", "path", "router_dependencies", "scopes", "shape")

    def __init__(
        self,
        path: str,
        handler: Handler,
        params: Any,
        router_dependencies: dict[str, Any],
        scopes: frozenset[object] = frozenset(),
    ) -> None:
        self.path = path
        self.handler = handler
        self.params = params
        self.router_dependencies = router_dependencies
        self.scopes = scopes
        self.shape = Pattern.compile(path).shape


class Roost:
    """A roost application.

    ``Roost(__file__)`` creates an app; ``app.start(host, port)`` serves it. Limits are
    set per server with ``server_options`` and per endpoint in ``@app.websocket``.

    ``broker`` makes ``broadcast``/``send_to``/``disconnect``/``connections`` reach every
    server of a deployment: a ``redis://`` URL, or a Broker such as ``MemoryBroker()``.
    Without one (the default) they reach this process, or every worker of ``--processes``.

    ``origins`` is the default ``Origin`` policy of the app's WebSocket endpoints: None (the
    default) accepts browsers only from the request's own host (and clients that send no
    ``Origin``); a list allows exactly those origins; ``"*"`` allows any.

    ``sync_threads`` (40): the threads that run sync handlers, hooks and callbacks, so that a
    blocking one does not stall the server (``@roost.inline`` keeps a trivial one on the loop).
    """

    #: Routes and hooks registered through this router carry this token (None for an app).
    scope: object | None = None

    def __init__(
        self,
        file_object: str = "",
        *,
        server_options: ServerOptions | None = None,
        broker: str | Broker | None = None,
        origins: str | list[str] | tuple[str, ...] | None = None,
        sync_threads: int = DEFAULT_SYNC_THREADS,
    ) -> None:
        self.file_object = file_object
        self.server_options = server_options or ServerOptions()
        self.http_routes: Router[HttpRoute] = Router()
        self.ws_routes: Router[WebSocketEndpoint] = Router()
        self.global_dependencies: dict[str, Any] = {}
        self.router_dependencies: dict[str, Any] = {}
        self.hub = Hub(make_broker(broker))
        self.server: Server | None = None
        self.origins = OriginPolicy.from_option(origins)
        self.calls = Caller(sync_threads)
        self._startup: list[Handler] = []
        self._shutdown: list[Handler] = []
        self.middlewares = Middlewares()
        self.cors: CORS | None = None
        self._exception_handler: Handler | None = None

    # -- dependencies ------------------------------------------------------------------------

    def inject_global(self, **dependencies: Any) -> None:
        """Add dependencies every handler can receive as ``global_dependencies``."""
        self.global_dependencies.update(dependencies)

    def inject(self, **dependencies: Any) -> None:
        """Add dependencies this app's handlers receive as ``router_dependencies``."""
        self.router_dependencies.update(dependencies)

    # -- HTTP routes -------------------------------------------------------------------------

    def add_route(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        router_dependencies: dict[str, Any] | None = None,
        scopes: frozenset[object] = frozenset(),
    ) -> Handler:
        """Route ``method`` requests on ``path`` (``/items/:id`` captures ``id``) to ``handler``."""
        self._registering()
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"unsupported HTTP method {method!r}")
        path = normalize(path)
        params = plan(handler, subject="request", path_params=Pattern.compile(path).params)
        deps = self.router_dependencies if router_dependencies is None else router_dependencies
        route = HttpRoute(path, handler, params, deps, scopes | self._own_scopes())
        self.http_routes.add(method, path, route)
        return handler

    def _own_scopes(self) -> frozenset[object]:
        return frozenset() if self.scope is None else frozenset((self.scope,))

    def _registering(self) -> None:
        """Called before anything is registered (a SubRouter refuses once it is mounted)."""

    def _mounted(self) -> None:
        """Called when this router is mounted in another with ``include_router``."""

    def _method(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            return self.add_route(method, path, handler)

        return decorator

    def get(self, path: str) -> Callable[[Handler], Handler]:
        """Route GET (and HEAD) requests on ``path``."""
        return self._method("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        """Route POST requests on ``path``."""
        return self._method("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        """Route PUT requests on ``path``."""
        return self._method("PUT", path)

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        """Route PATCH requests on ``path``."""
        return self._method("PATCH", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        """Route DELETE requests on ``path``."""
        return self._method("DELETE", path)

    def head(self, path: str) -> Callable[[Handler], Handler]:
        """Route HEAD requests on ``path``."""
        return self._method("HEAD", path)

    def options(self, path: str) -> Callable[[Handler], Handler]:
        """Route OPTIONS requests on ``path``."""
        return self._method("OPTIONS", path)

    # -- WebSocket endpoints -----------------------------------------------------------------

    def websocket(
        self,
        path: str,
        *,
        subprotocols: list[str] | tuple[str, ...] = (),
        origins: list[str] | tuple[str, ...] | None = None,
        **options: Any,
    ) -> Callable[[Handler], WebSocketEndpoint]:
        """Route WebSocket connections on ``path`` to the decorated handler.

        Connections are accepted before the handler runs. ``subprotocols``: the server's
        supported subprotocols, in preference order. ``origins``: the ``Origin`` values
        allowed to connect (a list, or ``"*"`` for any); by default the app's policy, which
        accepts only the request's own host and clients that send no ``Origin`` (others get
        403). Other keyword arguments are WebSocketOptions (``max_message_size=1_048_576``,
        ``ping_interval=20``, ``compression=True``, ...).
        """
        self._registering()
        ws_options = WebSocketOptions(**options)
        path = normalize(path)
        policy = OriginPolicy.from_option(origins) if origins is not None else None

        def decorator(handler: Handler) -> WebSocketEndpoint:
            endpoint = WebSocketEndpoint(
                path,
                handler,
                options=ws_options,
                subprotocols=tuple(subprotocols),
                origins=policy,
                router_dependencies=self.router_dependencies,
                scopes=self._own_scopes(),
            )
            self.ws_routes.add("GET", path, endpoint)
            return endpoint

        return decorator

    # -- lifecycle hooks ---------------------------------------------------------------------

    def startup_handler(self, handler: Handler) -> Handler:
        """Run ``handler`` (sync or async, no arguments) once the server is listening."""
        self._startup.append(handler)
        return handler

    def shutdown_handler(self, handler: Handler) -> Handler:
        """Run ``handler`` (sync or async, no arguments) after the server has shut down."""
        self._shutdown.append(handler)
        return handler

    def before_request(self, path: str | None = None) -> Callable[[Handler], Handler]:
        """Register a middleware run before the handler: for every request (on a SubRouter:
        every request to its routes), or for the route ``path``, whatever spelling of the
        path reached it. It also runs on WebSocket handshakes, before the origin check and
        ``before_connect``.

        It receives the Request and returns it (or None) to go on, or a Response to answer
        (for a handshake: to reject it with that response).
        """

        def decorator(func: Handler) -> Handler:
            self._registering()
            self.middlewares.add_before(_hook_path(path), func, scope=_hook_scope(self, path))
            return func

        return decorator

    def after_request(self, path: str | None = None) -> Callable[[Handler], Handler]:
        """Register a middleware run after the handler, scoped as ``before_request`` (HTTP
        requests only).

        It receives the Response (or the Request and the Response) and returns the Response
        to send (or None to keep it).
        """

        def decorator(func: Handler) -> Handler:
            self._registering()
            self.middlewares.add_after(_hook_path(path), func, scope=_hook_scope(self, path))
            return func

        return decorator

    def exception(self, handler: Handler) -> Handler:
        """Register the handler of exceptions raised by HTTP handlers: it receives the
        exception and returns the response (otherwise the client gets a plain 500)."""
        self._exception_handler = handler
        return handler

    def add_cors(
        self,
        origins: list[str] | tuple[str, ...] = ("*",),
        *,
        methods: list[str] | tuple[str, ...] | None = None,
        headers: list[str] | tuple[str, ...] = ("*",),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        """Answer CORS preflight requests and add CORS headers to responses for ``origins``."""
        self.cors = CORS(
            origins=tuple(origins),
            methods=tuple(methods) if methods else DEFAULT_CORS_METHODS,
            headers=tuple(headers),
            allow_credentials=allow_credentials,
            max_age=max_age,
        )

    def serve_directory(
        self, route: str, directory_path: str, index_file: str | None = None
    ) -> None:
        """Serve the files under ``directory_path`` at ``route`` (GET and HEAD), with
        ``index_file`` for directories; paths that leave the directory get 404."""
        serve = directory_handler(directory_path, index_file)
        route = normalize(route)

        async def serve_root(request: Request) -> Response:
            return await serve(request, "")

        async def serve_path(request: Request, path: str) -> Response:
            return await serve(request, path)

        self.add_route("GET", route, serve_root)
        self.add_route("GET", ("" if route == "/" else route) + "/{path:path}", serve_path)

    def include_router(self, router: Roost) -> None:
        """Mount a SubRouter: its routes and WebSocket endpoints under its prefix, with its
        own ``inject`` dependencies and middlewares (its router-wide hooks run for its routes
        and handshakes only). Register everything on the router before mounting it."""
        self._registering()
        if router is self:
            raise ValueError("a router cannot include itself")
        router._mounted()
        prefix = getattr(router, "prefix", "")
        for method, path, route in router.http_routes.entries():
            self.add_route(
                method,
                _join(prefix, path),
                route.handler,
                router_dependencies=route.router_dependencies,
                scopes=route.scopes,
            )
        for _, path, endpoint in router.ws_routes.entries():
            endpoint.mount(_join(prefix, path), self._own_scopes())
            self.ws_routes.add("GET", endpoint.path, endpoint)
        self.middlewares.include(router.middlewares, prefix)

    # -- delivery from anywhere --------------------------------------------------------------

    async def broadcast(
        self,
        endpoint: str,
        data: str | bytes,
        room: str | None = None,
        *,
        exclude: str | None = None,
    ) -> int:
        """Send ``data`` to every connection of ``endpoint`` (or of its ``room``), wherever it
        is connected; ``exclude`` names a connection id to skip. Returns the local count."""
        return await self.hub.broadcast(normalize(endpoint), data, room=room, exclude=exclude)

    async def send_to(self, connection_id: str, data: str | bytes) -> bool:
        """Send ``data`` to connection ``connection_id``, wherever it is connected."""
        return await self.hub.send_to(connection_id, data)

    async def disconnect(self, connection_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close connection ``connection_id`` with ``code``, wherever it is connected."""
        return await self.hub.disconnect(connection_id, code, reason)

    async def connections(self, endpoint: str | None = None, room: str | None = None) -> list[str]:
        """Ids of the open connections across the deployment (presence), optionally of one
        endpoint and room."""
        return await self.hub.connections(normalize(endpoint) if endpoint else None, room)

    async def join(self, connection_id: str, room: str) -> None:
        """Put connection ``connection_id`` in ``room``."""
        await self.hub.join(connection_id, room)

    async def leave(self, connection_id: str, room: str) -> None:
        """Take connection ``connection_id`` out of ``room``."""
        await self.hub.leave(connection_id, room)

    # -- request handling --------------------------------------------------------------------

    async def handle(self, request: HttpRequest, conn: HttpConnection) -> Awaitable[None] | None:
        """The server's entry point: answer one request on ``conn``. For an accepted
        WebSocket, return its session for the connection to run."""
        if request.upgrade or is_upgrade_request(request.headers):
            return await self._handle_upgrade(request, conn)
        response = await self._handle_http(request, conn)
        if isinstance(response, StreamingResponse):
            await response.write_to(conn, include_body=request.method != "HEAD")
            return None
        conn.send_response(
            response.status_code,
            response.headers,
            response.body,
            include_body=request.method != "HEAD",
        )
        return None

    async def _handle_http(self, request: HttpRequest, conn: HttpConnection) -> Response:
        route, path_params, known = self.http_routes.match(request.method, request.path)
        req = Request(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=request.body,
            client=Client(*conn.client),
            path_params=path_params,
            url=request.target,
        )
        if not self.middlewares and self.cors is None:
            return await self._respond(route, req, known)
        response: Response
        cors = self.cors
        if cors is not None and cors.is_preflight(req):
            return cors.preflight(req)
        # Hooks are matched against the route that was chosen, never the raw path.
        where: dict[str, Any] = {
            "path": canonical(request.path),
            "shape": route.shape if route is not None else None,
            "scopes": route.scopes if route is not None else (),
        }
        call = self.calls.call
        before = await self.middlewares.run_before(req, call, **where)
        if isinstance(before, Response):
            response = before
        else:
            req = before
            response = await self._respond(route, req, known)
        response = await self.middlewares.run_after(req, response, call, **where)
        if cors is not None:
            cors.decorate(req, response)
        return response

    async def _respond(self, route: HttpRoute | None, req: Request, known: bool) -> Response:
        if route is None:
            if known:
                allow = ", ".join(self.http_routes.allowed(req.path))
                return plain(405, "Method Not Allowed", [("allow", allow)])
            return plain(404, "Not Found")
        try:
            kwargs = resolve(
                route.params,
                subject=req,
                query=req.query_params,
                path_params=req.path_params,
                global_deps=self.global_dependencies,
                router_deps=route.router_dependencies,
            )
        except HttpError as exc:
            return plain(exc.status, exc.reason)
        try:
            return to_response(await self.calls.call(route.handler, **kwargs))
        except Exception as exc:
            if self._exception_handler is None:
                raise
            return to_response(await self.calls.call(self._exception_handler, exc))

    async def _handle_upgrade(
        self, request: HttpRequest, conn: HttpConnection
    ) -> Awaitable[None] | None:
        try:
            endpoint, path_params, ws_kwargs = await self._check_upgrade(request, conn)
        except HandshakeError as exc:
            conn.send_response(
                exc.status,
                [*exc.headers, ("content-type", "text/plain; charset=utf-8")],
                exc.reason.encode("utf-8"),
            )
            return None
        except _Rejected as rejected:
            response = rejected.response
            conn.send_response(response.status_code, response.headers, response.body)
            return None
        if conn.server.closing:  # shutdown began while the checks awaited: no new session
            conn.send_response(
                503, [("content-type", "text/plain; charset=utf-8")], b"shutting down"
            )
            return None
        key = request.headers.get("sec-websocket-key") or ""
        subprotocol = select_subprotocol(request.headers, endpoint.subprotocols)
        deflate_params = select_deflate(request.headers) if endpoint.options.compression else None
        deflate = PerMessageDeflate(deflate_params) if deflate_params is not None else None
        channel = conn.upgrade(
            accept_response(key, subprotocol=subprotocol, deflate=deflate_params),
            options=endpoint.options,
            deflate=deflate,
        )
        ws = WebSocket(
            self,
            channel,
            endpoint=endpoint.path,
            headers=request.headers,
            query_params=ws_kwargs.pop("__query__"),
            path_params=path_params,
            subprotocol=subprotocol,
        )
        return Session(self, endpoint, ws, channel, ws_kwargs).run()

    async def _check_upgrade(
        self, request: HttpRequest, conn: HttpConnection
    ) -> tuple[WebSocketEndpoint, dict[str, str], dict[str, Any]]:
        """Every check before the 101, in order: route, handshake, before_request hooks,
        origin, params, before_connect. (Connection limits apply earlier, when the TCP
        connection is accepted.) Raises HandshakeError or _Rejected."""
        endpoint, path_params, known = self.ws_routes.match("GET", request.path)
        if endpoint is None:
            raise HandshakeError(404 if not known else 405, "no WebSocket endpoint at this path")
        validate_request(request.method, request.headers)
        req = Request(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=b"",
            client=Client(*conn.client),
            path_params=path_params,
            url=request.target,
        )
        if self.middlewares.before:
            before = await self.middlewares.run_before(
                req,
                self.calls.call,
                path=canonical(request.path),
                shape=endpoint.shape,
                scopes=endpoint.scopes,
            )
            if isinstance(before, Response):
                raise _Rejected(before)
            req = before
        policy = endpoint.origins or self.origins
        refusal = policy.check(request.headers.get("origin"), request.headers.get("host"))
        if refusal is not None:
            raise HandshakeError(403, f"{refusal} (WebSocket endpoint {endpoint.path})")
        query = QueryParams(request.query_string)
        kwargs: dict[str, Any] = {"__query__": query}
        for name, func in (
            ("handler", endpoint.handler),
            ("on_connect", endpoint.on_connect_handler),
            ("on_close", endpoint.on_close_handler),
        ):
            if func is None:
                continue
            params = endpoint.plans.get(name)
            if params is None:
                params = endpoint.plans[name] = plan(
                    func, subject="websocket", path_params=tuple(path_params)
                )
            try:
                kwargs[name] = resolve(
                    params,
                    subject=None,
                    query=query,
                    path_params=path_params,
                    global_deps=self.global_dependencies,
                    router_deps=endpoint.router_dependencies,
                )
            except HttpError as exc:
                raise HandshakeError(exc.status, exc.reason) from None
        if endpoint.before_connect_handler is not None:
            result = await self.calls.call(endpoint.before_connect_handler, req)
            if result is not None:
                raise _Rejected(to_response(result))
        return endpoint, path_params, kwargs

    def connection_opened(self, ws: WebSocket, channel: WebSocketChannel) -> None:
        """Register a connection that has just opened."""
        self.hub.add(ws.id, ws.endpoint, channel)

    def connection_closed(self, ws: WebSocket) -> None:
        """Forget a connection that has ended."""
        self.hub.remove(ws.id)

    # -- serving -----------------------------------------------------------------------------

    async def create_server(
        self, host: str = "127.0.0.1", port: int = 8080, **listen: Any
    ) -> Server:
        """Start serving on the running loop and return the Server (port 0 picks a free port).

        Stop it with ``await server.shutdown()``.
        """
        server = Server(self.handle, options=self.server_options)
        await self.hub.start()
        await server.listen(host, port, **listen)
        self.server = server
        for hook in self._startup:
            await self.calls.call(hook)
        return server

    async def shutdown(self, *, code: int = 1001, reason: str = "server shutting down") -> None:
        """Shut the server down gracefully (open WebSockets get ``code``: 1001, or 1012 for a
        restart), then run the shutdown handlers."""
        if self.server is not None:
            await self.server.shutdown(code=code, reason=reason)
        await self.hub.stop()
        for hook in self._shutdown:
            try:
                await self.calls.call(hook)
            except Exception:
                logger.exception("shutdown handler raised")
        self.calls.close()

    def start(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        processes: int = 1,
        log_level: str = "INFO",
    ) -> None:
        """Serve until Ctrl-C or SIGTERM, then shut down gracefully.

        ``processes`` > 1 runs that many worker processes sharing the port. The environment
        (``ROOST_HOST``, ``ROOST_PORT``, ``ROOST_PROCESSES``, ``ROOST_BROKER``) overrides the
        arguments, and the flags ``--host``, ``--port``, ``--processes``, ``--broker`` and
        ``--log-level`` override both.
        """
        from roost.runner import run

        run(self, host=host, port=port, log_level=log_level, processes=processes)


Robyn = Roost


def make_broker(broker: str | Broker | None) -> Broker | None:
    """A Broker from a URL (``redis://`` or ``rediss://``), a Broker, or None."""
    if broker is None or isinstance(broker, Broker):
        return broker
    if broker.startswith(("redis://", "rediss://", "unix://")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from roost.hub.redis import RedisBroker

        # roost's own options ride in the URL's query; the rest is redis-py's.
        parts = urlsplit(broker)
        query = dict(parse_qsl(parts.query))
        ttl = float(query.pop("presence_ttl", 30.0))
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisBroker(url, presence_ttl=ttl)
    raise ValueError(f"unsupported broker {broker!r}: use a redis:// URL")


class SubRouter(Roost):
    """A group of routes and WebSocket endpoints under ``prefix``, with its own ``inject``
    dependencies and middlewares; mount it with ``app.include_router(router)``."""

    def __init__(self, file_object: str = "", prefix: str = "") -> None:
        super().__init__(file_object)
        self.prefix = normalize(prefix) if prefix.strip("/") else ""
        self.scope = _RouterScope(self.prefix)
        self._is_mounted = False

    def _registering(self) -> None:
        if self._is_mounted:
            raise RuntimeError(
                f"SubRouter {self.prefix or '/'!r} is already mounted with include_router: "
                "register its routes and hooks before mounting it"
            )

    def _mounted(self) -> None:
        self._registering()
        self._is_mounted = True


class _RouterScope:
    """The token that ties a SubRouter's router-wide hooks to its routes."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"<router {self.prefix or '/'}>"


def _hook_path(path: str | None) -> str | None:
    return None if path is None else normalize(path)


def _hook_scope(router: Roost, path: str | None) -> object | None:
    """A hook without a path is router-wide on a SubRouter, global on an app."""
    return router.scope if path is None else None


def _join(prefix: str, path: str) -> str:
    return normalize(prefix + path) if prefix else path


class _Rejected(Exception):
    """A before_connect hook returned a response: the handshake is refused with it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


__all__ = ["ClientDisconnected", "Robyn", "Roost", "SubRouter"]
