"""Request hooks: before/after middlewares (global or per path) and the CORS policy."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from roost.requests import Request
from roost.responses import Response, to_response
from roost.routing import Pattern

Middleware = Callable[..., Any]
DEFAULT_CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Middlewares:
    """Ordered before/after hooks. A hook bound to a path runs only for requests on it.

    A before hook receives the Request and returns it (possibly changed), None (unchanged),
    or a Response to answer at once. An after hook receives the Response (or the Request and
    the Response) and returns the Response to send, or None to keep it.
    """

    def __init__(self) -> None:
        self.before: list[tuple[Pattern | None, Middleware]] = []
        self.after: list[tuple[Pattern | None, Middleware, int]] = []

    def __bool__(self) -> bool:
        return bool(self.before or self.after)

    def add_before(self, path: str | None, func: Middleware) -> None:
        """Register a before hook, for every request or for ``path`` only."""
        self.before.append((Pattern.compile(path) if path else None, func))

    def add_after(self, path: str | None, func: Middleware) -> None:
        """Register an after hook, for every request or for ``path`` only."""
        arity = len(
            [
                p
                for p in inspect.signature(func).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        )
        self.after.append((Pattern.compile(path) if path else None, func, arity))

    async def run_before(self, request: Request) -> Request | Response:
        """Run the before hooks in order; stop at the first that answers."""
        for pattern, func in self.before:
            if pattern is not None and pattern.match(request.path) is None:
                continue
            result = await _maybe_await(func(request))
            if result is None:
                continue
            if isinstance(result, Request):
                request = result
            else:
                return to_response(result)
        return request

    async def run_after(self, request: Request, response: Response) -> Response:
        """Run the after hooks in order, each on the previous one's response."""
        for pattern, func, arity in self.after:
            if pattern is not None and pattern.match(request.path) is None:
                continue
            result = await _maybe_await(func(request, response) if arity >= 2 else func(response))
            if result is not None:
                response = to_response(result)
        return response


@dataclass(frozen=True, slots=True)
class CORS:
    """A CORS policy: which origins may call the app from a browser, with what.

    ``origins`` may contain ``"*"``. With ``allow_credentials`` the request's origin is echoed
    rather than ``*``, as browsers require.
    """

    origins: Sequence[str] = ("*",)
    methods: Sequence[str] = DEFAULT_CORS_METHODS
    headers: Sequence[str] = ("*",)
    allow_credentials: bool = False
    max_age: int = 600

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for ``origin``, or None if not allowed."""
        if origin is None:
            return None
        if "*" in self.origins:
            return origin if self.allow_credentials else "*"
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
