"""Robyn's ``robyn.authentication``: roost's authentication handlers."""

from roost.auth import (
    AuthenticationHandler,
    AuthenticationNotConfiguredError,
    BearerGetter,
    Identity,
    TokenGetter,
)

__all__ = [
    "AuthenticationHandler",
    "AuthenticationNotConfiguredError",
    "BearerGetter",
    "Identity",
    "TokenGetter",
]
