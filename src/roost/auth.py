"""Authentication for ``auth_required`` routes: an AuthenticationHandler turns a request into
an Identity (or refuses it with 401), reading the credential with a TokenGetter such as
BearerGetter. ``app.configure_authentication(handler)`` installs one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from roost.responses import Response
from roost.types import Identity

if TYPE_CHECKING:
    from roost.requests import Request

__all__ = [
    "AuthenticationHandler",
    "AuthenticationNotConfiguredError",
    "BearerGetter",
    "Identity",
    "TokenGetter",
]


class AuthenticationNotConfiguredError(RuntimeError):
    """An ``auth_required`` route, but no authentication handler was configured."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "authentication is not configured: call app.configure_authentication(handler) "
            "before serving auth_required routes" + (f" ({detail})" if detail else "")
        )


class TokenGetter(ABC):
    """Reads (``get_token``) and writes (``set_token``) a credential on a request, without
    decoding it: decoding is the AuthenticationHandler's work."""

    @property
    def scheme(self) -> str:
        """The scheme named in ``WWW-Authenticate`` on a 401 (the class name by default)."""
        return self.__class__.__name__

    @classmethod
    @abstractmethod
    def get_token(cls, request: Request) -> str | None:
        """The credential the request carries, or None."""

    @classmethod
    @abstractmethod
    def set_token(cls, request: Request, token: str) -> None:
        """Put ``token`` on ``request``."""


class BearerGetter(TokenGetter):
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750)."""

    @property
    def scheme(self) -> str:
        """``Bearer``."""
        return "Bearer"

    @classmethod
    def get_token(cls, request: Request) -> str | None:
        """The token after ``Bearer `` in the Authorization header, or None."""
        header = request.headers.get("authorization")
        if not header or not header.startswith("Bearer "):
            return None
        return header[len("Bearer ") :]

    @classmethod
    def set_token(cls, request: Request, token: str) -> None:
        """Set the Authorization header to ``Bearer <token>``."""
        request.headers.set("Authorization", f"Bearer {token}")


class AuthenticationHandler(ABC):
    """Decides who made a request: subclass it and implement ``authenticate`` (sync, run in
    the thread pool, or async), returning an Identity, or None to answer 401."""

    def __init__(self, token_getter: TokenGetter) -> None:
        self.token_getter = token_getter

    @property
    def unauthorized_response(self) -> Response:
        """The answer to a request ``authenticate`` refused: 401 with ``WWW-Authenticate``."""
        return Response(401, {"WWW-Authenticate": self.token_getter.scheme}, "Unauthorized")

    @abstractmethod
    def authenticate(self, request: Request) -> Identity | Any | None:
        """The Identity of the request's sender, or None to refuse it (may be async)."""
