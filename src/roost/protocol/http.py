"""HTTP/1.1 requests in (parsed by httptools) and responses out, with size limits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import unquote

import httptools

from roost.protocol.errors import HttpError, InvalidResponse

DEFAULT_MAX_HEADER_SIZE: Final = 16 * 1024
DEFAULT_MAX_HEADER_COUNT: Final = 100
DEFAULT_MAX_BODY_SIZE: Final = 10 * 1024 * 1024


class Headers:
    """Case-insensitive, multi-valued HTTP headers, in the order received or added.

    ``Headers([("Host", "a")])``, ``Headers({"Host": "a"})`` or ``Headers()``. Lookups
    (``get``, ``[]``, ``in``) return the first value of a name; ``set`` replaces every value of
    a name, ``append`` adds one.
    """

    __slots__ = ("_index", "raw")

    def __init__(self, raw: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        if raw is None:
            self.raw: list[tuple[str, str]] = []
        elif type(raw) is list:  # the common case, checked first: it is the cheapest
            self.raw = list(raw)
        elif isinstance(raw, Mapping):
            self.raw = [(str(k), str(v)) for k, v in raw.items()]
        else:
            self.raw = list(raw)
        self._index: dict[str, list[str]] | None = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = self._index = {}
            for name, value in self.raw:
                index.setdefault(name.lower(), []).append(value)
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), possibly none."""
        return list(self._lookup().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        values = self._lookup().get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def contains(self, name: str) -> bool:
        """Whether header ``name`` (any case) is present."""
        return name in self

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._lookup()))

    def __len__(self) -> int:
        return len(self._lookup())

    def is_empty(self) -> bool:
        """Whether there is no header at all."""
        return not self.raw

    def compact(self) -> None:
        """Drop the index that lookups build, until the next lookup builds it again: headers
        that are kept long but seldom read (a WebSocket's) then hold only their pairs."""
        self._index = None

    def keys(self) -> list[str]:
        """The lower-cased names, each once, in order."""
        return list(self._lookup())

    def values(self) -> list[str]:
        """The first value of each name, in the order of ``keys()``."""
        return [values[0] for values in self._lookup().values()]

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in order, names as sent."""
        return list(self.raw)

    def to_dict(self) -> dict[str, str]:
        """Lower-cased names mapped to their first value."""
        return {name: values[0] for name, values in self._lookup().items()}

    def set(self, name: str, value: str) -> None:
        """Make ``value`` the one value of header ``name`` (any case)."""
        self.remove(name)
        self.raw.append((name, str(value)))
        self._index = None

    __setitem__ = set

    def append(self, name: str, value: str) -> None:
        """Add ``value`` to header ``name``, after the values it has."""
        self.raw.append((name, str(value)))
        self._index = None

    def populate_from_dict(self, headers: Mapping[str, str]) -> None:
        """``append`` every name and value of ``headers``."""
        for name, value in headers.items():
            self.append(name, value)

    def remove(self, name: str) -> None:
        """Drop every value of header ``name`` (any case); nothing if it is absent."""
        lname = name.lower()
        self.raw = [(k, v) for k, v in self.raw if k.lower() != lname]
        self._index = None

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.remove(name)

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


@dataclass(slots=True)
class HttpRequest:
    """One complete HTTP/1.1 request as parsed off the wire.

    ``upgrade`` is True when the client asked to switch to a protocol the server speaks (a
    WebSocket); ``trailing`` then holds the bytes that followed the request.
    """

    method: str
    target: str
    path: str
    query_string: str
    headers: Headers
    body: bytes = b""
    keep_alive: bool = True
    upgrade: bool = False
    http_version: str = "1.1"
    trailing: bytes = field(default=b"", repr=False)


class RequestParser:
    """Feed bytes in, get complete requests out; malformed input raises HttpError.

    ``upgrade_protocols`` are the protocols an ``Upgrade`` request may switch to (the
    WebSocket's, by default). Such a request comes out with ``upgrade`` set and the bytes
    that followed it in ``trailing``; after it the parser must not be fed again. An upgrade
    to any other protocol (``h2c``, which ``curl --http2`` asks for) is ignored, as RFC 9110
    section 7.8 allows: the request, its body and the requests after it are parsed as plain
    HTTP/1.1. A CONNECT request comes out with ``keep_alive`` False, and input after it is
    ignored: what follows it is a tunnel's data, not HTTP.

    The parser holds no reference cycle: once its owner drops it, reference counting frees
    it at once, without waiting for the garbage collector.
    """

    __slots__ = ("_parser", "_requests")

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        upgrade_protocols: Iterable[str] = ("websocket",),
    ) -> None:
        self._requests = _Requests(
            max_header_size=max_header_size,
            max_header_count=max_header_count,
            max_body_size=max_body_size,
            upgrade_protocols=upgrade_protocols,
        )
        # httptools keeps the callbacks it calls, those of _Requests; _Requests sees the
        # httptools parser only while feed() runs, so that the two never form a cycle.
        self._parser = httptools.HttpRequestParser(self._requests)

    @property
    def max_header_size(self) -> int:
        """Largest request head, in bytes; over it: 431 (414 for the URI alone)."""
        return self._requests.max_header_size

    @property
    def max_header_count(self) -> int:
        """Most header fields in a request; over it: 431."""
        return self._requests.max_header_count

    @property
    def max_body_size(self) -> int:
        """Largest request body, in bytes; over it: 413."""
        return self._requests.max_body_size

    @property
    def upgrade_protocols(self) -> frozenset[str]:
        """The protocols an ``Upgrade`` request may switch to, lower-cased."""
        return self._requests.upgrade_protocols

    @property
    def in_progress(self) -> bool:
        """Whether part of a request has been received but not all of it."""
        return self._requests.in_progress

    def feed(self, data: bytes) -> list[HttpRequest]:
        """Parse ``data`` and return the requests it completes."""
        requests = self._requests
        requests.parser = self._parser
        try:
            return requests.feed(data)
        finally:
            self._parser = requests.parser  # an ignored upgrade starts a new httptools parser
            requests.parser = None


class _Requests:
    """RequestParser's state and the httptools callbacks that build the requests."""

    __slots__ = (
        "_body",
        "_body_size",
        "_done",
        "_head_size",
        "_header_bytes",
        "_headers",
        "_in_body",
        "_in_head",
        "_replayed",
        "_stopped",
        "_url",
        "max_body_size",
        "max_header_count",
        "max_header_size",
        "parser",
        "upgrade_protocols",
    )

    def __init__(
        self,
        *,
        max_header_size: int,
        max_header_count: int,
        max_body_size: int,
        upgrade_protocols: Iterable[str],
    ) -> None:
        self.max_header_size = max_header_size
        self.max_header_count = max_header_count
        self.max_body_size = max_body_size
        self.upgrade_protocols = frozenset(p.lower() for p in upgrade_protocols)
        self.parser: Any = None  # the httptools parser, while RequestParser.feed runs
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._replayed: list[tuple[str, str]] | None = None
        self._head_size = 0
        self._header_bytes = 0
        self._in_head = False
        self._in_body = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._done: list[HttpRequest] = []
        self._stopped = False

    @property
    def in_progress(self) -> bool:
        """Whether part of a request has been received but not all of it."""
        return self._in_head or self._in_body

    def feed(self, data: bytes) -> list[HttpRequest]:
        """Parse ``data`` and return the requests it completes."""
        if self._stopped:
            return []
        if not self._in_head and not self._in_body:  # these bytes start a request's head
            self._in_head = True
        if self._in_head:
            self._head_size += len(data)
        while True:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                offset = exc.args[0] if exc.args else len(data)
                replay = self._upgrade_requested(bytes(data[offset:]))
                if replay is not None:
                    data = replay
                    continue
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__ or exc.__cause__
                if isinstance(cause, HttpError):
                    raise cause from None
                raise HttpError(400, "malformed HTTP request") from None
            except httptools.HttpParserError as exc:
                if self._stopped:
                    break  # after a request that closes the connection: its bytes are ignored
                if isinstance(exc, httptools.HttpParserInvalidMethodError):
                    raise HttpError(400, "invalid HTTP method") from None
                raise HttpError(400, f"malformed HTTP request: {exc}") from None
            break
        if self._in_head and self._head_size > self.max_header_size:
            raise HttpError(431, "request header fields too large")
        done, self._done = self._done, []
        return done

    def _upgrade_requested(self, trailing: bytes) -> bytes | None:
        """httptools stopped after a request asking for a new protocol (it skips the body
        of such a request). Return the bytes to parse again as plain HTTP, if any.

        httptools stops only once that request is complete, so it is the last one done."""
        request = self._done[-1]
        if request.method == "CONNECT":
            request.keep_alive = False
            self._stopped = True
            return None
        offered = {
            token.strip().lower()
            for value in request.headers.get_all("upgrade")
            for token in value.split(",")
        }
        if offered & self.upgrade_protocols:
            request.upgrade = True
            request.trailing = trailing
            self._stopped = True
            return None
        # Not a protocol we speak: parse the request again from its head, without the
        # "upgrade" connection option, so that its body and what follows are HTTP again.
        # The request keeps the headers it was sent with.
        self._done.pop()
        self.parser = httptools.HttpRequestParser(self)
        self._replayed = request.headers.raw
        return _plain_head(request) + trailing

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._in_head = True
        self._header_bytes = 0
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.max_header_size:
            raise HttpError(414, "request URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(self._headers) > self.max_header_count:
            raise HttpError(431, "too many request header fields")
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_size:
            raise HttpError(431, "request header fields too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._head_size = 0
        if self._replayed is not None:
            self._headers, self._replayed = self._replayed, None
        version = self.parser.get_http_version()
        if not version.startswith("1."):
            raise HttpError(505, f"HTTP version {version} is not supported: use HTTP/1.1")
        hosts = [value for name, value in self._headers if name.lower() == "host"]
        if len(hosts) > 1:  # RFC 9112 section 3.2: which one a proxy used is anyone's guess
            raise HttpError(400, "repeated Host header")
        if not hosts and version != "1.0":
            raise HttpError(400, "missing Host header (required by HTTP/1.1)")
        if hosts and not _HOST.match(hosts[0]):  # RFC 9110 section 7.2: uri-host [":" port]
            raise HttpError(400, "invalid Host header")
        for name, value in self._headers:
            # httptools has refused a Content-Length that is not digits (400) already.
            if name.lower() == "content-length" and int(value) > self.max_body_size:
                raise HttpError(413, "request body too large")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body_size:
            raise HttpError(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        target = self._url.decode("latin-1")
        headers = self._headers
        origin_form = target
        if target[:7].lower() == "http://" or target[:8].lower() == "https://":
            # Absolute form (RFC 9112 section 3.2.2): the target's authority replaces Host.
            authority, slash, rest = target.partition("://")[2].partition("/")
            origin_form = slash + rest if slash else "/"
            headers = [(n, v) for n, v in headers if n.lower() != "host"]
            headers.append(("host", authority))
        raw_path, _, query = origin_form.partition("?")
        raw_path = raw_path.partition("#")[0]
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        self._done.append(
            HttpRequest(
                method=parser.get_method().decode("ascii"),
                target=target,
                path=unquote(raw_path) if "%" in raw_path else raw_path,
                query_string=query.partition("#")[0],
                headers=Headers(headers),
                body=b"".join(self._body),
                keep_alive=keep_alive,
                http_version=parser.get_http_version(),
            )
        )
        self._in_body = False
        self._body = []
        self._body_size = 0
        self._head_size = 0
        if not keep_alive and not parser.should_upgrade():
            # The connection ends with this request's answer: bytes after it are not parsed
            # (a client may have sent them anyway), so they cannot turn the answer into a 400.
            self._stopped = True


def _plain_head(request: HttpRequest) -> bytes:
    """The head of ``request`` without the "upgrade" option of its Connection header."""
    lines = [f"{request.method} {request.target} HTTP/{request.http_version}"]
    for name, value in request.headers.raw:
        if name.lower() == "connection":
            value = ",".join(t for t in value.split(",") if t.strip().lower() != "upgrade")
            if not value.strip():
                continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


#: RFC 3986 host (an IP literal, or reg-name characters) and an optional port; empty is valid.
_HOST: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?\Z")
_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}
# RFC 9110 section 5.1: a field name is a token; section 5.5: a field value is visible
# characters, spaces and tabs, and obs-text (0x80-0xFF). CR, LF, NUL and the other controls
# are not allowed, and neither is anything outside Latin-1, which the wire cannot carry.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Header names already found to be tokens (bounded: names may come from requests).
_GOOD_NAMES: set[str] = set()
# Framing is roost's to write: a handler's Content-Length or Transfer-Encoding is replaced.
_FRAMING: Final = frozenset({"content-length", "transfer-encoding"})


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, cached per status (100-599)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 599:
            raise InvalidResponse(f"HTTP status {status!r} is not between 100 and 599")
        line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode("latin-1")
        _STATUS_LINES[status] = line
    return line


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 9110 token (section 5.6.2), as header names must be."""
    return _TOKEN.fullmatch(text) is not None


def header_line(name: str, value: str) -> bytes:
    """``name: value\\r\\n`` as bytes, once both are checked (RFC 9110 sections 5.1, 5.5).

    Raises InvalidResponse for a name or value that is not a ``str``, a name that is not a
    token, or a value with CR, LF, another control character than tab, or a character
    outside Latin-1: such a header could end the head early or add headers of its own
    (response splitting).
    """
    if not isinstance(name, str) or not isinstance(value, str):
        raise InvalidResponse(f"response header {name!r}: {value!r} is not a pair of str")
    if name not in _GOOD_NAMES:
        if not _TOKEN.fullmatch(name):
            raise InvalidResponse(f"response header name {name!r} is not an RFC 9110 token")
        if len(_GOOD_NAMES) < 512:
            _GOOD_NAMES.add(name)
    # Fast path: printable ASCII (0x20-0x7E) is the common case; the regex decides the rest.
    if not (value.isascii() and value.isprintable()) and not _FIELD_VALUE.fullmatch(value):
        raise InvalidResponse(
            f"response header {name!r} has a line break, a control character or a character "
            f"outside Latin-1 in its value {value!r}"
        )
    return f"{name}: {value}\r\n".encode("latin-1")


def body_allowed(status: int) -> bool:
    """Whether a response with ``status`` may have a body (not 1xx, 204 or 304)."""
    return status >= 200 and status != 204 and status != 304


def encode_response_head(
    status: int,
    headers: Iterable[tuple[str, str]],
    *,
    content_length: int | None,
    keep_alive: bool = True,
) -> bytes:
    """The status line and headers of a final response (status 200-599).

    ``content_length`` None means a chunked body. A status without a body (204, 304) gets
    no framing header. Raises InvalidResponse for a bad status or header, before anything
    is written (see ``header_line``).
    """
    if status < 200:
        raise InvalidResponse(f"HTTP status {status!r} is not a final status (200-599)")
    parts = [status_line(status)]
    for name, value in headers:
        if len(name) in (14, 17) and name.lower() in _FRAMING:
            continue
        parts.append(header_line(name, value))
    if body_allowed(status):
        if content_length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            parts.append(b"content-length: %d\r\n" % content_length)
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    keep_alive: bool = True,
    include_body: bool = True,
) -> bytes:
    """A whole response; ``include_body=False`` answers HEAD with the GET headers. The body
    of a status that has none (204, 304) is never sent."""
    head = encode_response_head(status, headers, content_length=len(body), keep_alive=keep_alive)
    return head + body if include_body and body_allowed(status) else head


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; an empty ``data`` is the last chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)
