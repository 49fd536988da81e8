"""What an app has registered, as dispatch reads it: HTTP routes, WebSocket endpoints, hooks,
CORS, dependencies, the default origin policy and the error handler.

``roost.app`` writes it (the registration API); ``roost.dispatch`` reads it for each request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roost.auth import AuthenticationHandler
from roost.hub.history import RoomHistory
from roost.middleware import CORS, Middlewares
from roost.origins import OriginPolicy
from roost.params import Param
from roost.protocol.deflate import Compression
from roost.protocol.handshake import check_subprotocols
from roost.protocol.http import Headers
from roost.routing import Pattern, Router
from roost.server.options import WebSocketOptions
from roost.typed import MessageTable

__all__ = ["HTTP_METHODS", "HttpRoute", "RouteOptions", "Routes", "WebSocketEndpoint"]

Handler = Callable[..., Any]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How one route is served and documented.

    ``const``: the first response is kept and sent again for every later request (the
    handler runs once per process). ``auth_required``: the app's authentication handler must
    accept the request first (401 otherwise). ``status_code``: the status of a plain (not
    Response) return value. The rest only describe the route in the OpenAPI document:
    ``openapi_name`` (its summary), ``openapi_tags``, ``response_model``, ``responses``,
    ``deprecated``, ``include_in_schema``.
    """

    const: bool = False
    auth_required: bool = False
    status_code: int | None = None
    openapi_name: str = ""
    openapi_tags: tuple[str, ...] = ()
    response_model: Any = None
    responses: dict[int | str, Any] | None = None
    deprecated: bool = False
    include_in_schema: bool = True


DEFAULT_OPTIONS = RouteOptions()


class HttpRoute:
    """One HTTP handler, its resolution plan, its options, and what its hooks are matched
    against: the route's shape and the routers (``scopes``) it was registered through.
    ``auth`` is the Routes of the router it was registered on, whose authentication handler
    (or else the app's) checks an ``auth_required`` route."""

    __slots__ = (
        "auth",
        "const_response",
        "handler",
        "options",
        "params",
        "path",
        "router_dependencies",
        "scopes",
        "shape",
    )

    def __init__(
        self,
        path: str,
        handler: Handler,
        params: list[Param],
        router_dependencies: dict[str, Any],
        scopes: frozenset[object] = frozenset(),
        options: RouteOptions = DEFAULT_OPTIONS,
        auth: Routes | None = None,
    ) -> None:
        self.path = path
        self.handler = handler
        self.params = params
        self.router_dependencies = router_dependencies
        self.scopes = scopes
        self.shape = Pattern.compile(path).shape
        self.options = options
        self.auth = auth
        #: A const route's first response (status, headers, body), once it has one.
        self.const_response: tuple[int, list[tuple[str, str]], bytes] | None = None


@dataclass(slots=True)
class Routes:
    """Everything dispatch needs to answer a request, shared by reference with the app, so
    what is registered later is seen at once."""

    http: Router[HttpRoute] = field(default_factory=Router)
    websockets: Router[WebSocketEndpoint] = field(default_factory=Router)
    middlewares: Middlewares = field(default_factory=Middlewares)
    global_dependencies: dict[str, Any] = field(default_factory=dict)
    origins: OriginPolicy = field(default_factory=OriginPolicy)
    cors: CORS | None = None
    exception_handler: Handler | None = None
    authentication_handler: AuthenticationHandler | None = None
    #: Added to every response that lacks them (``app.set_response_header``), except on
    #: ``response_headers_excluded`` paths; added to every request (``add_request_header``).
    response_headers: Headers = field(default_factory=Headers)
    response_headers_excluded: frozenset[str] = frozenset()
    request_headers: Headers = field(default_factory=Headers)


Callback = Callable[..., Any]


class WebSocketEndpoint:
    """What ``@app.websocket(path)`` returns: the handler, plus ``on_connect``, ``on_close``
    and ``before_connect`` decorators for its callbacks. A ``subprotocols`` name that is not
    a token raises ValueError. ``compression`` is the endpoint's permessage-deflate (None
    when its options turn it off). ``messages`` holds its typed handlers (``.on(Type)``).
    ``history``: what each of its rooms keeps (None: no history); ``room_history`` sets it
    for one room. ``presence_events``: whether members of its rooms are told who joins and
    who leaves."""

    def __init__(
        self,
        path: str,
        handler: Callback,
        *,
        options: WebSocketOptions,
        subprotocols: tuple[str, ...] = (),
        origins: OriginPolicy | None = None,
        router_dependencies: dict[str, Any] | None = None,
        scopes: frozenset[object] = frozenset(),
        messages: MessageTable | None = None,
        history: RoomHistory | None = None,
        presence_events: bool = False,
    ) -> None:
        if history is not None and not isinstance(history, RoomHistory):
            raise TypeError(f"history must be a RoomHistory or None, not {history!r}")
        self.history = history
        self.room_histories: dict[str, RoomHistory | None] = {}
        self.presence_events = bool(presence_events)
        self.path = path
        self.shape = Pattern.compile(path).shape
        self.scopes = scopes
        self.handler = handler
        self.messages = messages if messages is not None else MessageTable()
        self.options = options
        # The endpoint's permessage-deflate, with the deflater its connections share.
        self.compression = Compression(options.deflate_settings()) if options.compression else None
        self.subprotocols = check_subprotocols(subprotocols)
        self.origins = origins
        self.router_dependencies = router_dependencies if router_dependencies is not None else {}
        self.on_connect_handler: Callback | None = None
        self.on_close_handler: Callback | None = None
        self.before_connect_handler: Callback | None = None
        self.plans: dict[str, list[Param]] = {}
        self.__name__ = getattr(handler, "__name__", "websocket")
        self.__doc__ = handler.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler(*args, **kwargs)

    def mount(self, path: str, scopes: frozenset[object]) -> None:
        """Move the endpoint to ``path`` (its router was mounted under a prefix) and add the
        mounting router's ``scopes``."""
        self.path = path
        self.shape = Pattern.compile(path).shape
        self.scopes = self.scopes | scopes
        self.plans.clear()

    def room_history(self, room: str, history: RoomHistory | None) -> None:
        """Give room ``room`` its own history settings (None: no history for that room),
        instead of the endpoint's."""
        if type(room) is not str:
            raise TypeError(f"a room is named by a str, not {type(room).__name__}")
        if history is not None and not isinstance(history, RoomHistory):
            raise TypeError(f"history must be a RoomHistory or None, not {history!r}")
        self.room_histories[room] = history

    def history_of(self, room: str) -> RoomHistory | None:
        """The history room ``room`` keeps (None: none)."""
        return self.room_histories.get(room, self.history)

    @property
    def keeps_history(self) -> bool:
        """Whether any room of this endpoint keeps history."""
        return self.history is not None or any(self.room_histories.values())

    def callback(self, name: str) -> Callback | None:
        """The ``"handler"``, ``"on_connect"`` or ``"on_close"`` callable (None if unset)."""
        if name == "handler":
            return self.handler
        if name == "on_connect":
            return self.on_connect_handler
        if name == "on_close":
            return self.on_close_handler
        raise ValueError(f"no callback named {name!r}")

    def on_connect(self, func: Callback) -> Callback:
        """Register the callback run once the connection is open, before the handler.

        A string it returns is sent to the client as a text message.
        """
        self.on_connect_handler = func
        return func

    def on_close(self, func: Callback) -> Callback:
        """Register the callback run after the connection has ended, on every close path."""
        self.on_close_handler = func
        return func

    def on(self, message_type: type[Any], *, reply: Any = None) -> Callable[[Callback], Callback]:
        """Register the decorated ``func(websocket, msg)`` for messages of ``message_type``, a
        msgspec Struct tagged by a field such as ``type``. Once the endpoint's own handler has
        returned, roost receives the connection's messages, decodes each into one of the
        registered types and calls its handler; a message that carries ``ref`` is answered
        with the handler's return value (see docs/typed-messages.md). ``reply``: the type of
        that value in the AsyncAPI document (None, the default: ``func``'s return
        annotation)."""

        def register(func: Callback) -> Callback:
            self.messages.add(message_type, func, reply)
            return func

        return register

    def sends(self, *types: Any) -> None:
        """Declare the types the server sends on this endpoint (with ``websocket.send``,
        ``broadcast`` or ``send_to``), for the AsyncAPI document; replies and errors are
        always there."""
        self.messages.sends(*types)

    def before_connect(self, func: Callback) -> Callback:
        """Register a hook run on the upgrade ``Request`` before any 101: return None to
        accept, or a ``Response`` to reject the handshake with its status and body."""
        self.before_connect_handler = func
        return func
