"""The handshake policy: every check a WebSocket upgrade passes before its 101.

In order: the route (404/405), the handshake itself (400/426), the ``before_request`` hooks
that apply to the endpoint, the origin policy (403), query and path parameters (400), then
``before_connect``. Connection limits come earlier still, when the server accepts the TCP
connection (``roost.server``). A refusal is raised as ``Refused`` carrying the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from roost.hub.history import RESUME_PARAM, Position, parse_resume
from roost.params import plan, resolve
from roost.protocol.errors import HandshakeError, HttpError
from roost.protocol.handshake import validate_request
from roost.protocol.http import HttpRequest
from roost.requests import QueryParams, Request
from roost.responses import Response, plain, to_response
from roost.routes import Routes, WebSocketEndpoint
from roost.routing import canonical

__all__ = ["Admitted", "Refused", "admit"]

#: The three callables of an endpoint whose parameters are resolved at the handshake.
CALLBACKS = ("handler", "on_connect", "on_close")


class Refused(Exception):
    """The handshake is refused with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response

    @classmethod
    def from_error(cls, error: HandshakeError) -> Refused:
        """The refusal for a HandshakeError: its status, headers and reason as text."""
        return cls(plain(error.status, error.reason, error.headers))


@dataclass(slots=True)
class Admitted:
    """A handshake that passed every check: its endpoint, parameters and the keyword
    arguments already resolved for the handler and its callbacks."""

    endpoint: WebSocketEndpoint
    path_params: dict[str, str]
    query: QueryParams
    kwargs: dict[str, dict[str, Any]]
    resume: dict[str, Position] | None = None


async def admit(
    routes: Routes,
    request: HttpRequest,
    client: tuple[str, int],
    call: Callable[..., Awaitable[Any]],
) -> Admitted:
    """Run the checks on the upgrade ``request`` from ``client``; raise Refused."""
    endpoint, path_params, known = routes.websockets.match("GET", request.path)
    if endpoint is None:
        raise Refused(plain(405 if known else 404, "no WebSocket endpoint at this path"))
    try:
        validate_request(request.method, request.headers, request.http_version)
    except HandshakeError as exc:
        raise Refused.from_error(exc) from None
    if request.query_string and not _utf8_query(request.query_string):
        # Two different byte strings must never name one room (or one anything).
        raise Refused(plain(400, "the query string is not valid UTF-8 once percent-decoded"))
    req = Request.from_http(request, client, path_params)
    if routes.middlewares.before:
        before = await routes.middlewares.run_before(
            req, call, path=canonical(request.path), shape=endpoint.shape, scopes=endpoint.scopes
        )
        if isinstance(before, Response):
            raise Refused(before)
        req = before
    policy = endpoint.origins or routes.origins
    refusal = policy.check(request.headers.get("origin"), request.headers.get("host"))
    if refusal is not None:
        raise Refused(plain(403, f"{refusal} (WebSocket endpoint {endpoint.path})"))
    query = req.query_params
    kwargs = _resolve_callbacks(routes, endpoint, query, path_params)
    resume = None
    raw_resume = query.get_all(RESUME_PARAM) if endpoint.keeps_history else []
    if len(raw_resume) > 1:
        raise Refused(plain(400, f"{RESUME_PARAM} given {len(raw_resume)} times; once at most"))
    if raw_resume:
        try:
            resume = parse_resume(raw_resume[0])
        except ValueError as exc:
            raise Refused(plain(400, str(exc))) from None
    if endpoint.before_connect_handler is not None:
        result = await call(endpoint.before_connect_handler, req)
        if result is not None:
            raise Refused(to_response(result))
    return Admitted(endpoint, path_params, query, kwargs, resume)


def _utf8_query(query: str) -> bool:
    """Whether every name and value of ``query`` is valid UTF-8 once percent-decoded."""
    try:
        parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _resolve_callbacks(
    routes: Routes,
    endpoint: WebSocketEndpoint,
    query: QueryParams,
    path_params: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Keyword arguments of the handler, on_connect and on_close (the connection itself is
    filled in later); a missing or malformed parameter refuses the handshake with 400."""
    kwargs: dict[str, dict[str, Any]] = {}
    for name in CALLBACKS:
        func = endpoint.callback(name)
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
                global_deps=routes.global_dependencies,
                router_deps=endpoint.router_dependencies,
            )
        except HttpError as exc:
            raise Refused(plain(exc.status, exc.reason)) from None
    return kwargs
