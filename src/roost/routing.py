"""Path patterns compiled once: ``/rooms/:room_id`` and ``/rooms/{room_id}`` capture a segment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")


def normalize(path: str) -> str:
    """A route path with one leading slash and no trailing slash (except ``/``)."""
    path = "/" + path.strip("/")
    return path


def canonical(path: str) -> str:
    """The spelling of a request path that routes are matched against: trailing slashes
    dropped (``/a/b/`` and ``/a/b//`` reach the route ``/a/b``)."""
    if len(path) > 1 and path.endswith("/"):
        return path.rstrip("/") or "/"
    return path


@dataclass(slots=True)
class Pattern:
    """One compiled route path."""

    path: str
    regex: re.Pattern[str] | None
    params: tuple[str, ...]
    #: The path with each parameter's name replaced, so that ``/u/:id`` and ``/u/{uid}``
    #: compare equal: two patterns of one shape match exactly the same paths.
    shape: str = ""

    @classmethod
    def compile(cls, path: str) -> Pattern:
        """Compile a route path such as ``/rooms/:room_id``."""
        path = normalize(path)
        names: list[str] = []
        parts: list[str] = []
        shape: list[str] = []
        pos = 0
        for m in _PARAM.finditer(path):
            shape.append(path[pos : m.start()])
            parts.append(re.escape(path[pos : m.start()]))
            name = m.group(1) or m.group(2)
            if name in names:
                raise ValueError(f"route {path!r} repeats parameter {name!r}")
            names.append(name)
            greedy = m.group(0).endswith(":path}")
            parts.append(f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)")
            shape.append("{*}" if greedy else "{}")
            pos = m.end()
        if not names:
            return cls(path, None, (), path)
        parts.append(re.escape(path[pos:]))
        shape.append(path[pos:])
        regex = re.compile("^" + "".join(parts) + "$")
        return cls(path, regex, tuple(names), "".join(shape))

    def match(self, path: str) -> dict[str, str] | None:
        """The captured parameters when ``path`` matches, else None."""
        if self.regex is None:
            return {} if path == self.path else None
        m = self.regex.match(path)
        return m.groupdict() if m else None


@dataclass(slots=True)
class Router(Generic[T]):
    """Maps paths (and, for HTTP, methods) to routes: exact paths by dict, patterns in order."""

    _static: dict[str, dict[str, T]] = field(default_factory=dict)
    _dynamic: list[tuple[Pattern, dict[str, T]]] = field(default_factory=list)

    def add(self, method: str, path: str, route: T) -> None:
        pattern = Pattern.compile(path)
        if pattern.regex is None:
            table = self._static.setdefault(pattern.path, {})
        else:
            found = [t for p, t in self._dynamic if p.path == pattern.path]
            if found:
                table = found[0]
            else:
                table = {}
                self._dynamic.append((pattern, table))
        if method in table:
            raise ValueError(f"{method} {pattern.path} is already routed")
        table[method] = route

    def match(self, method: str, path: str) -> tuple[T | None, dict[str, str], bool]:
        """(route, path params, path known): a known path without ``method`` means 405."""
        path = canonical(path)
        table = self._static.get(path)
        if table is not None:
            route = table.get(method)
            if route is None and method == "HEAD":
                route = table.get("GET")
            return route, {}, True
        for pattern, table in self._dynamic:
            params = pattern.match(path)
            if params is not None:
                route = table.get(method)
                if route is None and method == "HEAD":
                    route = table.get("GET")
                if route is not None:
                    return route, params, True
        known = any(p.match(path) is not None for p, _ in self._dynamic)
        return None, {}, known

    def entries(self) -> list[tuple[str, str, T]]:
        """Every (method, path, route), in registration order of paths."""
        out = [(m, path, r) for path, table in self._static.items() for m, r in table.items()]
        out += [(m, p.path, r) for p, table in self._dynamic for m, r in table.items()]
        return out

    def allowed(self, path: str) -> list[str]:
        """The methods routed for ``path``."""
        table = self._static.get(normalize(path))
        if table is not None:
            return sorted(table)
        return sorted({m for p, t in self._dynamic if p.match(path) is not None for m in t})
