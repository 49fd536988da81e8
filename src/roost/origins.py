"""Which web pages may open a WebSocket: the ``Origin`` policy of an endpoint.

Browsers send cookies with a WebSocket handshake whatever page opens it, so without a check
any site could talk to an app as its logged-in visitor (cross-site WebSocket hijacking). The
default policy accepts a browser only when the page's origin is the host the request was sent
to (``Origin`` matches ``Host``); clients that send no ``Origin`` (not browsers) are accepted.
An endpoint or app can instead allow a list of origins, or any origin with ``"*"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    """(lower-case host, port) of ``host[:port]``, the port defaulting from ``scheme``."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path or parts.query:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return host.lower(), port


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in canonical form (lower case, default port dropped), or
    ``"null"``; None when ``origin`` is not a serialized origin (RFC 6454 section 6.2)."""
    origin = origin.strip()
    if origin == "null":
        return origin
    scheme, sep, rest = origin.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or not rest or "/" in rest:
        return None
    hp = _host_port(rest, scheme)
    if hp is None:
        return None
    host, port = hp
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{shown}:{port}"


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """``allowed`` None: same host only (the default); ``any_origin``: everything."""

    allowed: frozenset[str] | None = None
    any_origin: bool = False

    @classmethod
    def from_option(cls, value: str | Iterable[str] | None) -> OriginPolicy:
        """The policy for an ``origins=`` option: None (same host), ``"*"``, or origins."""
        if value is None:
            return cls()
        items = [value] if isinstance(value, str) else list(value)
        if "*" in items:
            if len(items) > 1:
                raise ValueError("origins: '*' allows every origin; list nothing else with it")
            return cls(any_origin=True)
        allowed: set[str] = set()
        for item in items:
            canonical = normalize_origin(item) if isinstance(item, str) else None
            if canonical is None:
                raise ValueError(
                    f"origins: {item!r} is not an origin; write scheme://host[:port], "
                    "e.g. 'https://app.example.com', or '*' for any origin"
                )
            allowed.add(canonical)
        return cls(allowed=frozenset(allowed))

    def check(self, origin: str | None, host: str | None) -> str | None:
        """None when a handshake with these ``Origin`` and ``Host`` headers is allowed, else
        why not (for the 403's body)."""
        if self.any_origin:
            return None
        if self.allowed is not None:
            if origin is None:
                return (
                    "this endpoint accepts only the origins "
                    f"{sorted(self.allowed)}, and the request sent no Origin header"
                )
            if normalize_origin(origin) in self.allowed:
                return None
            return (
                f"origin {origin!r} is not allowed: the endpoint accepts {sorted(self.allowed)}; "
                f"add it to origins=[...]"
            )
        if origin is None:
            return None  # not a browser: nothing to hijack
        if self._same_host(origin, host):
            return None
        return (
            f"origin {origin!r} does not match the requested host {host!r}: cross-site "
            "WebSocket connections are refused by default; allow it with "
            f"origins=[{origin!r}] on @app.websocket(...) or Roost(...), "
            "or origins='*' to allow any origin"
        )

    @staticmethod
    def _same_host(origin: str, host: str | None) -> bool:
        canonical = normalize_origin(origin)
        if canonical is None or canonical == "null" or not host:
            return False
        scheme, _, netloc = canonical.partition("://")
        mine = _host_port(netloc, scheme)
        theirs = _host_port(host.strip(), scheme)
        return mine is not None and mine == theirs
