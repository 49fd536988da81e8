"""What a handler sees of a request: Request, QueryParams, Client, Url."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson

from roost.forms import Form, parse_form
from roost.protocol.http import Headers, HttpRequest

__all__ = ["Client", "Headers", "QueryParams", "Request", "Url"]


class QueryParams:
    """The query string's parameters, URL-decoded; a key may repeat."""

    __slots__ = ("_items", "_map")

    def __init__(self, query_string: str = "") -> None:
        self._items = parse_qsl(query_string, keep_blank_values=True) if query_string else []
        self._map: dict[str, list[str]] = {}
        for key, value in self._items:
            self._map.setdefault(key, []).append(value)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key``, or ``default``."""
        values = self._map.get(key)
        return values[0] if values else default

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        return list(self._map.get(key, ()))

    def __getitem__(self, key: str) -> str:
        return self._map[key][0]

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def items(self) -> list[tuple[str, str]]:
        """Every (key, value) pair, in order."""
        return list(self._items)

    def to_dict(self) -> dict[str, list[str]]:
        """Each key mapped to all of its values."""
        return {k: list(v) for k, v in self._map.items()}

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


class Client:
    """The peer's address: ``client.ip``/``client.port``, or ``client.get("ip")``."""

    __slots__ = ("ip", "port")

    def __init__(self, ip: str, port: int) -> None:
        self.ip = ip
        self.port = port

    def get(self, key: str, default: Any = None) -> Any:
        """``"ip"`` or ``"port"``, dict-style, or ``default``."""
        if key == "ip":
            return self.ip or default
        if key == "port":
            return self.port
        return default

    def __getitem__(self, key: str) -> Any:
        if key not in ("ip", "port"):
            raise KeyError(key)
        return self.get(key)

    def __repr__(self) -> str:
        return f"Client(ip={self.ip!r}, port={self.port})"


class Url:
    """Where a request was sent: ``scheme`` (``"http"``), ``host`` (the Host header),
    ``path`` (percent-decoded) and ``query`` (the raw query string). ``str(url)`` is the
    whole URL."""

    __slots__ = ("host", "path", "query", "scheme")

    def __init__(self, scheme: str, host: str, path: str, query: str = "") -> None:
        self.scheme = scheme
        self.host = host
        self.path = path
        self.query = query

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Url):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"Url({str(self)!r})"


class Request:
    """An HTTP request, as handlers and ``before_connect`` hooks see it.

    ``form_data`` and ``files`` parse a form body on first use (``roost.forms``): a body
    that is not a form gives empty dicts, a malformed one an HttpError 400. ``identity`` is
    what the app's authentication handler returned for an ``auth_required`` route (None
    elsewhere).
    """

    __slots__ = (
        "_form",
        "_url",
        "body",
        "client",
        "headers",
        "identity",
        "method",
        "path",
        "path_params",
        "query_params",
        "query_string",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        body: bytes,
        client: Client,
        path_params: dict[str, str] | None = None,
        url: Url | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.query_params = QueryParams(query_string)
        self.headers = headers
        self.body = body
        self.client = client
        self.path_params = path_params or {}
        self._url = url
        self.identity: Any = None
        self._form: Form | None = None

    @classmethod
    def from_http(
        cls,
        request: HttpRequest,
        client: tuple[str, int],
        path_params: dict[str, str] | None = None,
    ) -> Request:
        """The Request for a parsed HTTP request from ``client`` (an (ip, port) pair)."""
        return cls(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=request.body,
            client=Client(*client),
            path_params=path_params,
        )

    @property
    def url(self) -> Url:
        """Where the request was sent (built on first use)."""
        url = self._url
        if url is None:
            host = self.headers.get("host") or ""
            url = self._url = Url("http", host, self.path, self.query_string)
        return url

    @property
    def ip_addr(self) -> str:
        """The client's IP address."""
        return self.client.ip

    def _parsed_form(self) -> Form:
        form = self._form
        if form is None:
            form = self._form = parse_form(self.headers.get("content-type"), self.body)
        return form

    @property
    def form_data(self) -> dict[str, str]:
        """The text fields of a urlencoded or multipart form body (name → value)."""
        return self._parsed_form().fields

    @property
    def files(self) -> dict[str, bytes]:
        """The files of a multipart form body (file name → content)."""
        return self._parsed_form().files

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError for invalid JSON."""
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        query = f"?{self.query_string}" if self.query_string else ""
        return f"<Request {self.method} {self.path}{query}>"
