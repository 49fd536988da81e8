"""The registration API: Roost (also exported as Robyn) and SubRouter. Routes, WebSocket
endpoints, hooks, dependencies and CORS are registered here into ``Routes``; delivery from
anywhere goes to the hub; ``create_server``/``shutdown``/``start`` run the app.

Requests are answered by ``roost.dispatch``; processes are run by ``roost.runner``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from roost.asyncapi import asyncapi_document, asyncapi_page
from roost.auth import AuthenticationHandler, AuthenticationNotConfiguredError
from roost.calls import DEFAULT_SYNC_THREADS, Caller, inline
from roost.client_script import CLIENT_PATH, ClientScript, check_client_path
from roost.dispatch import Dispatcher
from roost.hub.broker import Broker
from roost.hub.history import RoomHistory
from roost.hub.hub import Hub
from roost.hub.urls import make_broker
from roost.metrics import METRICS_DIR_ENV, Metrics
from roost.middleware import CORS, DEFAULT_CORS_METHODS
from roost.openapi import OpenAPI, docs_page
from roost.origins import OriginPolicy
from roost.params import plan
from roost.protocol.errors import ClientDisconnected
from roost.requests import Request
from roost.responses import Response, html
from roost.routes import (
    DEFAULT_OPTIONS,
    HTTP_METHODS,
    HttpRoute,
    RouteOptions,
    Routes,
    WebSocketEndpoint,
)
from roost.routing import Pattern, normalize
from roost.runner import start
from roost.server.options import ServerOptions, WebSocketOptions
from roost.server.serve import Server
from roost.server.stats import ServerStats
from roost.settings import Settings
from roost.staticfiles import directory_handler
from roost.typed import JSON, MessageTable, as_message, codec_named

logger = logging.getLogger("roost")

Handler = Callable[..., Any]
#: How long shutdown waits for the broker to disconnect before leaving it behind (s).
BROKER_STOP_TIMEOUT = 5.0


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

    ``openapi``: True (or an ``roost.openapi.OpenAPI`` with the document's ``info``) serves
    the OpenAPI document of the HTTP routes at ``/openapi.json`` and a page listing them at
    ``/docs``, and the AsyncAPI document of the WebSocket endpoints at ``/asyncapi.json`` and
    its page at ``/asyncapi`` (False, the default: none of them).

    ``client_path``: where the app serves roost's browser client, a script that reconnects
    and resumes rooms with history (docs/client.md): ``"/roost/client.js"`` by default, None
    for nowhere. It is not served when one of the app's own GET routes matches that path.
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
        openapi: bool | OpenAPI = False,
        client_path: str | None = CLIENT_PATH,
    ) -> None:
        self.file_object = file_object
        self.client_path = check_client_path(client_path)
        self.openapi: OpenAPI | None = (
            openapi if isinstance(openapi, OpenAPI) else OpenAPI() if openapi else None
        )
        self.server_options = server_options or ServerOptions()
        self.routes = Routes(origins=OriginPolicy.from_option(origins))
        self.router_dependencies: dict[str, Any] = {}
        self.hub = Hub(make_broker(broker))
        self.server: Server | None = None
        self._metrics: Metrics | None = None
        self.calls = Caller(sync_threads)
        self._startup: list[Handler] = []
        self._shutdown: list[Handler] = []

    # -- dependencies ------------------------------------------------------------------------

    def inject_global(self, **dependencies: Any) -> None:
        """Add dependencies every handler can receive as ``global_dependencies``."""
        self.routes.global_dependencies.update(dependencies)

    def inject(self, **dependencies: Any) -> None:
        """Add dependencies this app's handlers receive as ``router_dependencies``."""
        self.router_dependencies.update(dependencies)

    # -- HTTP routes -------------------------------------------------------------------------

    def add_route(
        self,
        method: str,
        path: str,
        handler: Handler,
        is_const: bool = False,
        auth_required: bool = False,
        openapi_name: str = "",
        openapi_tags: list[str] | tuple[str, ...] | None = None,
        *,
        status_code: int | None = None,
        response_model: Any = None,
        responses: dict[int | str, Any] | None = None,
        deprecated: bool = False,
        include_in_schema: bool = True,
        router_dependencies: dict[str, Any] | None = None,
        scopes: frozenset[object] = frozenset(),
        options: RouteOptions | None = None,
    ) -> Handler:
        """Route ``method`` requests on ``path`` (``/items/:id`` captures ``id``) to ``handler``.

        ``is_const``: send the first response again for every later request (the handler runs
        once per process). ``auth_required``: the app's authentication handler must accept the
        request (``configure_authentication``), else 401. ``status_code``: the status of a
        plain return value. ``openapi_name``, ``openapi_tags``, ``response_model``,
        ``responses``, ``deprecated`` and ``include_in_schema`` describe the route in the
        OpenAPI document (``openapi=True``).
        """
        self._registering()
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"unsupported HTTP method {method!r}")
        path = normalize(path)
        if options is None:
            options = RouteOptions(
                const=is_const,
                auth_required=auth_required,
                status_code=status_code,
                openapi_name=openapi_name,
                openapi_tags=tuple(openapi_tags or ()),
                response_model=response_model,
                responses=responses,
                deprecated=deprecated,
                include_in_schema=include_in_schema,
            )
            if options == DEFAULT_OPTIONS:
                options = DEFAULT_OPTIONS
        params = plan(handler, subject="request", path_params=Pattern.compile(path).params)
        deps = self.router_dependencies if router_dependencies is None else router_dependencies
        route = HttpRoute(
            path, handler, params, deps, scopes | self._own_scopes(), options, self.routes
        )
        self.routes.http.add(method, path, route)
        return handler

    def _add_mounted(self, method: str, path: str, route: HttpRoute) -> None:
        """Register a mounted router's route, keeping its options, plan and auth source."""
        self._registering()
        mounted = HttpRoute(
            path,
            route.handler,
            route.params,
            route.router_dependencies,
            route.scopes | self._own_scopes(),
            route.options,
            route.auth,
        )
        self.routes.http.add(method, path, mounted)

    def _own_scopes(self) -> frozenset[object]:
        return frozenset() if self.scope is None else frozenset((self.scope,))

    def _registering(self) -> None:
        """Called before anything is registered (a SubRouter refuses once it is mounted)."""

    def _mounted(self) -> None:
        """Called when this router is mounted in another with ``include_router``."""

    def _method(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            return self.add_route(method, path, handler, **options)

        return decorator

    def get(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route GET (and HEAD) requests on ``path``; ``const`` and the other options are
        those of ``add_route`` (``auth_required=True``, ``openapi_tags=[...]``, ...)."""
        return self._method("GET", path, is_const=const, **options)

    def post(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route POST requests on ``path``, with ``add_route``'s options."""
        return self._method("POST", path, is_const=const, **options)

    def put(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route PUT requests on ``path``, with ``add_route``'s options."""
        return self._method("PUT", path, is_const=const, **options)

    def patch(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route PATCH requests on ``path``, with ``add_route``'s options."""
        return self._method("PATCH", path, is_const=const, **options)

    def delete(
        self, path: str, const: bool = False, **options: Any
    ) -> Callable[[Handler], Handler]:
        """Route DELETE requests on ``path``, with ``add_route``'s options."""
        return self._method("DELETE", path, is_const=const, **options)

    def head(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route HEAD requests on ``path``, with ``add_route``'s options."""
        return self._method("HEAD", path, is_const=const, **options)

    def options(
        self, path: str, const: bool = False, **options: Any
    ) -> Callable[[Handler], Handler]:
        """Route OPTIONS requests on ``path``, with ``add_route``'s options."""
        return self._method("OPTIONS", path, is_const=const, **options)

    def trace(self, path: str, const: bool = False, **options: Any) -> Callable[[Handler], Handler]:
        """Route TRACE requests on ``path``, with ``add_route``'s options."""
        return self._method("TRACE", path, is_const=const, **options)

    def add_view(self, path: str, view: Any, const: bool = False) -> None:
        """Route the handlers of a view on ``path``: each of its functions named after an HTTP
        method (``get``, ``post``, ...) handles that method.

        A view is a function without parameters that defines those functions (it is run
        once, here, to define them), or a class or object with such methods (a class is
        instantiated without arguments). A view that defines none raises ValueError.
        """
        handlers = _view_handlers(view)
        if not handlers:
            raise ValueError(
                f"view {getattr(view, '__name__', view)!r} defines no handler: name its "
                f"functions after HTTP methods ({', '.join(m.lower() for m in HTTP_METHODS)})"
            )
        for method, handler in handlers:
            self.add_route(method, path, handler, is_const=const)

    def view(self, path: str, const: bool = False) -> Callable[[Any], Any]:
        """Decorator form of ``add_view``."""

        def decorator(view: Any) -> Any:
            self.add_view(path, view, const)
            return view

        return decorator

    # -- authentication and headers ----------------------------------------------------------

    def configure_authentication(self, authentication_handler: AuthenticationHandler) -> None:
        """Check ``auth_required`` routes registered through this router (and, on an app,
        those of mounted SubRouters without a handler of their own) with
        ``authentication_handler``: a request it refuses gets its 401; an accepted one reaches
        the handler with ``request.identity`` set."""
        self.routes.authentication_handler = authentication_handler

    def add_response_header(self, key: str, value: str) -> None:
        """Add header ``key`` to every response that does not set it (see ``set_...``)."""
        self.routes.response_headers.append(key, value)

    def set_response_header(self, key: str, value: str) -> None:
        """Make ``value`` the one default of response header ``key``: added to every response
        that does not set ``key`` itself, except on ``exclude_response_headers_for`` paths."""
        self.routes.response_headers.set(key, value)

    def add_request_header(self, key: str, value: str) -> None:
        """Add header ``key: value`` to every request, after those the client sent."""
        self.routes.request_headers.append(key, value)

    def set_request_header(self, key: str, value: str) -> None:
        """As ``add_request_header``, replacing an earlier default of ``key``."""
        self.routes.request_headers.set(key, value)

    def exclude_response_headers_for(self, paths: list[str] | None) -> None:
        """Leave out the default response headers on these request paths."""
        self.routes.response_headers_excluded = frozenset(normalize(p) for p in paths or ())

    # -- WebSocket endpoints -----------------------------------------------------------------

    def websocket(
        self,
        path: str,
        *,
        subprotocols: list[str] | tuple[str, ...] = (),
        origins: list[str] | tuple[str, ...] | None = None,
        encoding: str = "json",
        max_invalid_messages: int | None = None,
        invalid_close_code: int = 1008,
        history: RoomHistory | None = None,
        presence_events: bool = False,
        **options: Any,
    ) -> Callable[[Handler], WebSocketEndpoint]:
        """Route WebSocket connections on ``path`` to the decorated handler.

        Connections are accepted before the handler runs. ``subprotocols``: the server's
        supported subprotocols, in preference order. ``origins``: the ``Origin`` values
        allowed to connect (a list, or ``"*"`` for any); by default the app's policy, which
        accepts only the request's own host and clients that send no ``Origin`` (others get
        403). Typed messages (``@endpoint.on(Type)``, docs/typed-messages.md): ``encoding``
        is ``"json"`` (text messages) or ``"msgpack"`` (binary); after
        ``max_invalid_messages`` invalid messages (None: never) the connection is closed with
        ``invalid_close_code`` (1008, or 1007). ``history``: a ``RoomHistory`` makes every
        room of the endpoint keep its recent messages, delivered in envelopes and replayed to
        clients that reconnect (docs/delivery.md; None, the default: no history).
        ``presence_events``: tell the members of each room who joins and leaves. Other
        keyword arguments are WebSocketOptions (``max_message_size=1_048_576``,
        ``ping_interval=20``, ``compression=True``, ...).
        """
        self._registering()
        ws_options = WebSocketOptions(**options)
        path = normalize(path)
        policy = OriginPolicy.from_option(origins) if origins is not None else None
        messages = MessageTable(
            codec_named(encoding), max_errors=max_invalid_messages, close_code=invalid_close_code
        )

        def decorator(handler: Handler) -> WebSocketEndpoint:
            endpoint = WebSocketEndpoint(
                path,
                handler,
                options=ws_options,
                subprotocols=tuple(subprotocols),
                origins=policy,
                router_dependencies=self.router_dependencies,
                scopes=self._own_scopes(),
                messages=messages,
                history=history,
                presence_events=presence_events,
            )
            self.routes.websockets.add("GET", path, endpoint)
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
            self.routes.middlewares.add_before(
                _hook_path(path), func, scope=_hook_scope(self, path)
            )
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
            self.routes.middlewares.add_after(_hook_path(path), func, scope=_hook_scope(self, path))
            return func

        return decorator

    def exception(self, handler: Handler) -> Handler:
        """Register the handler of exceptions raised by HTTP handlers: it receives the
        exception and returns the response (otherwise the client gets a plain 500)."""
        self.routes.exception_handler = handler
        return handler

    def add_cors(
        self,
        origins: str | list[str] | tuple[str, ...] = ("*",),
        *,
        methods: str | list[str] | tuple[str, ...] | None = None,
        headers: str | list[str] | tuple[str, ...] = ("*",),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        """Answer CORS preflight requests and add CORS headers to responses for ``origins``
        (a list, or one origin as a string)."""
        self.routes.cors = CORS(
            origins=_strings(origins),
            methods=_strings(methods) if methods else DEFAULT_CORS_METHODS,
            headers=_strings(headers),
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
        for method, path, route in router.routes.http.entries():
            self._add_mounted(method, _join(prefix, path), route)
        for _, path, endpoint in router.routes.websockets.entries():
            endpoint.mount(_join(prefix, path), self._own_scopes())
            self.routes.websockets.add("GET", endpoint.path, endpoint)
        self.routes.middlewares.include(router.routes.middlewares, prefix)

    # -- delivery from anywhere --------------------------------------------------------------

    async def broadcast(
        self,
        endpoint: str | WebSocketEndpoint,
        data: Any,
        room: str | None = None,
        *,
        exclude: str | None = None,
    ) -> int:
        """Send ``data`` to every connection of ``endpoint`` (or of its ``room``), wherever it
        is connected; ``exclude`` names a connection id to skip. Returns the local count.
        ``data`` other than ``str``/``bytes`` is a typed value, encoded as the endpoint's
        typed messages are."""
        path = _endpoint_path(endpoint)
        if not isinstance(data, str | bytes):
            if not isinstance(endpoint, WebSocketEndpoint):
                endpoint = self.routes.websockets.match("GET", path)[0] or endpoint
            codec = endpoint.messages.codec if isinstance(endpoint, WebSocketEndpoint) else JSON
            data = codec.encode(data)
        return await self.hub.broadcast(path, data, room=room, exclude=exclude)

    async def send_to(self, connection_id: str, data: Any) -> bool:
        """Send ``data`` to connection ``connection_id``, wherever it is connected; ``data``
        other than ``str``/``bytes`` is sent as JSON text."""
        return await self.hub.send_to(connection_id, as_message(data))

    async def disconnect(self, connection_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close connection ``connection_id`` with ``code``, wherever it is connected."""
        return await self.hub.disconnect(connection_id, code, reason)

    async def connections(
        self, endpoint: str | WebSocketEndpoint | None = None, room: str | None = None
    ) -> list[str]:
        """Ids of the open connections across the deployment (presence), optionally of one
        endpoint and room."""
        path = _endpoint_path(endpoint) if endpoint else None
        return await self.hub.connections(path, room)

    async def join(
        self, connection_id: str, room: str, meta: Any = None, *, replay: int = 0
    ) -> None:
        """Put connection ``connection_id`` in ``room``, wherever it is connected, with
        ``meta`` (a JSON value of at most 4 KiB, reported by ``presence``). In a room with
        history, the last ``replay`` messages are sent first unless its client resumes."""
        await self.hub.join(connection_id, room, meta, replay)

    async def presence(self, endpoint: str | WebSocketEndpoint, room: str) -> dict[str, Any]:
        """The members of ``room`` of ``endpoint`` on every process and machine: connection
        id -> the metadata it joined with (None when none)."""
        return await self.hub.presence(_endpoint_path(endpoint), room)

    async def leave(self, connection_id: str, room: str) -> None:
        """Take connection ``connection_id`` out of ``room``."""
        await self.hub.leave(connection_id, room)

    # -- serving -----------------------------------------------------------------------------

    async def create_server(
        self, host: str = "127.0.0.1", port: int = 8080, **listen: Any
    ) -> Server:
        """Start serving on the running loop and return the Server (port 0 picks a free port).

        ``listen`` goes to ``Server.listen`` (``ssl=`` an ``ssl.SSLContext`` serves TLS).
        Readiness reports ready once the startup handlers have run. Stop it with
        ``await app.shutdown()``.
        """
        self._check_authentication()
        self._add_openapi_routes()
        self._add_client_route()
        stats = ServerStats()
        metrics_path = self.server_options.metrics_path
        metrics = None
        if metrics_path is not None:
            metrics = Metrics(metrics_path, directory=os.environ.get(METRICS_DIR_ENV) or None)
        dispatcher = Dispatcher(self.routes, self.calls, self.hub, stats=stats, metrics=metrics)
        server = Server(dispatcher.handle, options=self.server_options, stats=stats)
        self._metrics = metrics
        if metrics is not None:
            metrics.attach(server, self.hub)
        self._configure_hub()
        await self.hub.start()
        await server.listen(host, port, **listen)
        self.server = server
        for hook in self._startup:
            await self.calls.call(hook)
        server.set_ready()
        return server

    def _configure_hub(self) -> None:
        """Tell the hub which rooms keep history and which endpoints announce presence."""
        endpoints = {path: ep for _, path, ep in self.routes.websockets.entries()}

        def history_of(path: str, room: str) -> RoomHistory | None:
            endpoint = endpoints.get(path)
            return None if endpoint is None else endpoint.history_of(room)

        self.hub.history_of = history_of
        self.hub.presence_events = {p for p, ep in endpoints.items() if ep.presence_events}
        self.hub.reserved = {
            p for p, ep in endpoints.items() if ep.presence_events or ep.keeps_history
        }

    def _add_openapi_routes(self) -> None:
        """Route ``/openapi.json``, ``/docs``, ``/asyncapi.json`` and ``/asyncapi`` (once;
        each unless the app routes that path itself)."""
        openapi = self.openapi
        if openapi is None:
            return
        known = {(m, p) for m, p, _ in self.routes.http.entries()}
        hidden = RouteOptions(include_in_schema=False)
        if ("GET", "/openapi.json") not in known:
            routes = self.routes

            def openapi_json() -> Response:
                return Response(200, None, openapi.document(routes.http.entries()))

            self.add_route("GET", "/openapi.json", inline(openapi_json), options=hidden)
        if ("GET", "/docs") not in known:
            page = docs_page(openapi.info.title)
            self.add_route("GET", "/docs", inline(lambda: html(page)), options=hidden)
        if ("GET", "/asyncapi.json") not in known:
            endpoints, info = self.routes.websockets, openapi.info

            def asyncapi_json() -> Response:
                return Response(200, None, asyncapi_document(endpoints.entries(), info))

            self.add_route("GET", "/asyncapi.json", inline(asyncapi_json), options=hidden)
        if ("GET", "/asyncapi") not in known:
            page_a = asyncapi_page(openapi.info.title)
            self.add_route("GET", "/asyncapi", inline(lambda: html(page_a)), options=hidden)

    def _add_client_route(self) -> None:
        """Route ``client_path`` to the browser client (once; unless the app answers GET
        there itself)."""
        path = self.client_path
        if path is None or self.routes.http.match("GET", path)[0] is not None:
            return
        script = ClientScript()

        def client_js(request: Request) -> Response:
            return script.respond(request)

        hidden = RouteOptions(include_in_schema=False)
        self.add_route("GET", path, inline(client_js), options=hidden)

    def _check_authentication(self) -> None:
        for method, path, route in self.routes.http.entries():
            if not route.options.auth_required:
                continue
            own = route.auth.authentication_handler if route.auth is not None else None
            if own is None and self.routes.authentication_handler is None:
                raise AuthenticationNotConfiguredError(f"{method} {path} is auth_required")

    async def shutdown(self, *, code: int = 1001, reason: str = "server shutting down") -> None:
        """Shut the server down gracefully (open WebSockets get ``code``: 1001, or 1012 for a
        restart), then run the shutdown handlers."""
        if self.server is not None:
            await self.server.shutdown(code=code, reason=reason)
        if self._metrics is not None:
            self._metrics.detach()
        try:
            await asyncio.wait_for(self.hub.stop(), BROKER_STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("the broker did not disconnect within %.0f s", BROKER_STOP_TIMEOUT)
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
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_ca_certs: str | None = None,
    ) -> None:
        """Serve until SIGTERM or Ctrl-C, then shut down gracefully (docs/deployment.md says
        what each signal does).

        ``processes`` > 1 runs that many worker processes sharing the port. ``ssl_certfile``
        (a PEM certificate chain) serves ``https://`` and ``wss://``, with ``ssl_keyfile``
        (its key, if not in the same file) and ``ssl_ca_certs`` (CA certificates: clients
        must present a certificate they signed); None (the default) serves plain HTTP.
        The environment (``ROOST_HOST``, ``ROOST_PORT``, ``ROOST_SSL_CERTFILE``, ... one
        ``ROOST_*`` variable per flag) overrides the arguments, and the server flags in
        ``sys.argv`` (the same as the ``roost`` command's: ``--host``, ``--port``,
        ``--processes``, ``--ssl-certfile``, ...; see ``roost --help``) override both; other
        arguments are left to the app. A bad value exits with status 2 and a message naming
        it. When it returns, SIGTERM, SIGINT and SIGHUP are left ignored: the process is
        expected to exit.
        """
        defaults = Settings(
            host=host,
            port=port,
            processes=processes,
            log_level=log_level,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            ssl_ca_certs=ssl_ca_certs,
        )
        start(self, defaults)


Robyn = Roost


class SubRouter(Roost):
    """A group of routes and WebSocket endpoints under ``prefix``, with its own ``inject``
    dependencies and middlewares; mount it with ``app.include_router(router)``.

    ``SubRouter("/api")``, ``SubRouter(prefix="/api")``, ``SubRouter(__file__, "/api")`` and
    ``SubRouter(__file__, prefix="/api")`` all mount under ``/api``: a lone positional
    argument is the prefix unless it names a module (``__name__``) or an existing ``.py``
    file (``__file__``). ``tags`` are added to the OpenAPI tags of its routes.
    """

    def __init__(
        self,
        *args: str,
        prefix: str = "",
        tags: list[str] | tuple[str, ...] | None = None,
        file_object: str | None = None,
    ) -> None:
        if len(args) > 2:
            raise TypeError("SubRouter takes at most two positional arguments (file, prefix)")
        if len(args) == 2:
            file_object, prefix = args
        elif args and (prefix or _names_a_module(args[0])):
            file_object = args[0]
        elif args:
            prefix = args[0]
        super().__init__(file_object or "")
        self.prefix = normalize(prefix) if prefix.strip("/") else ""
        self.tags = tuple(tags or ())
        self.scope = _RouterScope(self.prefix)
        self._is_mounted = False

    def add_route(
        self, method: str, path: str, handler: Handler, *args: Any, **kwargs: Any
    ) -> Handler:
        """As ``Roost.add_route``; ``tags`` join each route's ``openapi_tags``."""
        if self.tags and "options" not in kwargs:
            given = tuple(args[3] if len(args) > 3 else kwargs.pop("openapi_tags", None) or ())
            args = args[:3]
            kwargs["openapi_tags"] = (*self.tags, *(t for t in given if t not in self.tags))
        return super().add_route(method, path, handler, *args, **kwargs)

    def _registering(self) -> None:
        if self._is_mounted:
            raise RuntimeError(
                f"SubRouter {self.prefix or '/'!r} is already mounted with include_router: "
                "register its routes and hooks before mounting it"
            )

    def _mounted(self) -> None:
        self._registering()
        self._is_mounted = True


def _names_a_module(value: str) -> bool:
    """Whether a SubRouter's lone positional argument is ``__name__`` or ``__file__`` rather
    than a prefix."""
    if value.startswith("/"):
        return value.endswith(".py") and os.path.isfile(value)
    return value == "__main__" or "." in value


def _view_handlers(view: Any) -> list[tuple[str, Handler]]:
    """(method, handler) for each function of a view named after an HTTP method."""
    names: dict[str, Any]
    if isinstance(view, types.FunctionType):
        if inspect.signature(view).parameters:
            raise TypeError(f"view {view.__name__!r} must take no parameters")
        names = _locals_of(view)
    else:
        target = view() if isinstance(view, type) else view
        names = {m.lower(): getattr(target, m.lower(), None) for m in HTTP_METHODS}
    found: list[tuple[str, Handler]] = []
    for method in HTTP_METHODS:
        handler = names.get(method.lower())
        if callable(handler):
            found.append((method, handler))
    return found


def _locals_of(view: types.FunctionType) -> dict[str, Any]:
    """Run ``view`` once and return the local names it defined."""
    captured: dict[str, Any] = {}
    code = view.__code__

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        view()
    finally:
        sys.setprofile(previous)
    return captured


class _RouterScope:
    """The token that ties a SubRouter's router-wide hooks to its routes."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"<router {self.prefix or '/'}>"


def _strings(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A list of names given as a list, or as one string."""
    return (value,) if isinstance(value, str) else tuple(value)


def _endpoint_path(endpoint: str | WebSocketEndpoint) -> str:
    """An endpoint given by its path or by what ``@app.websocket`` returned."""
    return endpoint.path if isinstance(endpoint, WebSocketEndpoint) else normalize(endpoint)


def _hook_path(path: str | None) -> str | None:
    return None if path is None else normalize(path)


def _hook_scope(router: Roost, path: str | None) -> object | None:
    """A hook without a path is router-wide on a SubRouter, global on an app."""
    return router.scope if path is None else None


def _join(prefix: str, path: str) -> str:
    return normalize(prefix + path) if prefix else path


__all__ = ["ClientDisconnected", "Robyn", "Roost", "SubRouter"]
