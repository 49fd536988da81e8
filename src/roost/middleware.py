"""Request hooks: before/after middlewares (global, per route path, or per router) and CORS.

Hooks are matched against the route a request reached, never against the raw path: every
spelling of a path that reaches a handler (``/a/7``, ``/a/7/``, ``/a/7//``, ``/a%2F7``) runs
the same hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from roost.requests import Request
from roost.responses import Response, to_response
from roost.routing import Pattern

Middleware = Callable[..., Any]
#: How hooks are called: ``await call(func, *args)`` (see roost.calls.Caller.call).
Call = Callable[..., Awaitable[Any]]
DEFAULT_CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")


@dataclass(frozen=True, slots=True)
class Hook:
    """One before or after hook and where it applies.

    ``scope`` set: a router-wide hook of a SubRouter, for the routes registered through it.
    ``pattern`` set: a hook for one route path. Neither: a hook for every request.
    """

    func: Middleware
    pattern: Pattern | None = None
    scope: object | None = None
    arity: int = 1

    def applies(self, path: str, shape: str | None, scopes: Collection[object]) -> bool:
        """Whether the hook runs for a request that reached a route of ``shape`` (None when
        no route matched) and router ``scopes``, at the canonical ``path``."""
        if self.scope is not None:
            return self.scope in scopes
        pattern = self.pattern
        if pattern is None:
            return True
        return pattern.shape == shape or pattern.match(path) is not None


def _positional_arity(func: Middleware) -> int:
    return len(
        [
            p
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    )


class Middlewares:
    """Ordered before/after hooks.

    A before hook receives the Request and returns it (possibly changed), None (unchanged),
    or a Response to answer at once. An after hook receives the Response (or the Request and
    the Response) and returns the Response to send, or None to keep it.
    """

    def __init__(self) -> None:
        self.before: list[Hook] = []
        self.after: list[Hook] = []

    def __bool__(self) -> bool:
        return bool(self.before or self.after)

    def add_before(
        self, path: str | None, func: Middleware, *, scope: object | None = None
    ) -> None:
        """Register a before hook: for every request, for route ``path``, or (``scope``)
        for the routes of one router."""
        pattern = Pattern.compile(path) if path is not None else None
        self.before.append(Hook(func, pattern, scope))

    def add_after(self, path: str | None, func: Middleware, *, scope: object | None = None) -> None:
        """Register an after hook, scoped as ``add_before``."""
        pattern = Pattern.compile(path) if path is not None else None
        self.after.append(Hook(func, pattern, scope, _positional_arity(func)))

    def include(self, other: Middlewares, prefix: str) -> None:
        """Take a mounted router's hooks: path-scoped ones under ``prefix``; router-wide ones
        keep their scope, so they apply to that router's routes only."""
        for mine, theirs in ((self.before, other.before), (self.after, other.after)):
            for hook in theirs:
                pattern = hook.pattern
                if pattern is not None and prefix:
                    pattern = Pattern.compile(prefix + pattern.path)
                mine.append(Hook(hook.func, pattern, hook.scope, hook.arity))

    async def run_before(
        self,
        request: Request,
        call: Call,
        *,
        path: str,
        shape: str | None,
        scopes: Collection[object] = (),
    ) -> Request | Response:
        """Run the before hooks that apply, in order; stop at the first that answers."""
        for hook in self.before:
            if not hook.applies(path, shape, scopes):
                continue
            result = await call(hook.func, request)
            if result is None:
                continue
            if isinstance(result, Request):
                request = result
            else:
                return to_response(result)
        return request

    async def run_after(
        self,
        request: Request,
        response: Response,
        call: Call,
        *,
        path: str,
        shape: str | None,
        scopes: Collection[object] = (),
    ) -> Response:
        """Run the after hooks that apply, in order, each on the previous one's response."""
        for hook in self.after:
            if not hook.applies(path, shape, scopes):
                continue
            if hook.arity >= 2:
                result = await call(hook.func, request, response)
            else:
                result = await call(hook.func, response)
            if result is not None:
                response = to_response(result)
        return response


@dataclass(frozen=True, slots=True)
class CORS:
    """A CORS policy: which origins may call the app from a browser, with what.

    ``origins`` may contain ``"*"`` (any origin, without credentials). ``allow_credentials``
    requires an explicit list of origins: reflecting every origin with credentials would let
    any site read a logged-in user's responses, so that combination is refused.
    """

    origins: Sequence[str] = ("*",)
    methods: Sequence[str] = DEFAULT_CORS_METHODS
    headers: Sequence[str] = ("*",)
    allow_credentials: bool = False
    max_age: int = 600

    def __post_init__(self) -> None:
        if isinstance(self.origins, str):
            raise TypeError("CORS origins must be a sequence of origins, not one string")
        if self.allow_credentials and "*" in self.origins:
            raise ValueError(
                "CORS: allow_credentials=True cannot be combined with the wildcard origin '*': "
                "list the origins allowed to send credentials, e.g. "
                "app.add_cors(['https://app.example.com'], allow_credentials=True)"
            )
        if self.allow_credentials and "null" in self.origins:
            raise ValueError(
                "CORS: allow_credentials=True cannot be combined with the origin 'null': "
                "sandboxed frames and local files of any site send 'Origin: null'"
            )

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for ``origin``, or None if not allowed."""
        if origin is None:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, request: Request) -> Response:
        """The answer to an OPTIONS preflight request."""
        origin = self.allowed_origin(request.headers.get("origin"))
        if origin is None:
            return Response(403, None, "CORS origin not allowed")
        asked = request.headers.get("access-control-request-headers")
        headers = [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", ", ".join(self.methods)),
            (
                "access-control-allow-headers",
                asked if asked and "*" in self.headers else ", ".join(self.headers),
            ),
            ("access-control-max-age", str(self.max_age)),
            ("vary", "Origin"),
        ]
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return Response(204, headers, b"")

    def decorate(self, request: Request, response: Response) -> None:
        """Add the CORS headers to a normal response."""
        origin = self.allowed_origin(request.headers.get("origin"))
        if origin is None:
            return
        response.set_header("access-control-allow-origin", origin)
        if origin != "*":
            response.set_header("vary", "Origin")
        if self.allow_credentials:
            response.set_header("access-control-allow-credentials", "true")

    @staticmethod
    def is_preflight(request: Request) -> bool:
        """Whether ``request`` is a CORS preflight."""
        return (
            request.method == "OPTIONS"
            and "origin" in request.headers
            and "access-control-request-method" in request.headers
        )
