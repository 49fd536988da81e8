"""roost.protocol.http without a network: upgrades the server does not speak, and responses
whose framing roost owns."""

from __future__ import annotations

import pytest

from roost.protocol.errors import InvalidResponse
from roost.protocol.http import HttpRequest, RequestParser, encode_response, encode_response_head

H2C_HEAD = (
    b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
)


def feed_bytewise(parser: RequestParser, data: bytes) -> list[HttpRequest]:
    return [r for i in range(len(data)) for r in parser.feed(data[i : i + 1])]


@pytest.mark.parametrize("bytewise", [False, True])
def test_other_upgrade_is_plain_http_with_its_body(bytewise: bool) -> None:
    data = (
        H2C_HEAD
        + b"Content-Length: 5\r\n\r\nhello"
        + H2C_HEAD
        + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    parser = RequestParser()
    requests = feed_bytewise(parser, data) if bytewise else parser.feed(data)
    assert [(r.method, r.path, r.body, r.upgrade, r.keep_alive) for r in requests] == [
        ("POST", "/p", b"hello", False, True),
        ("POST", "/p", b"abc", False, True),
        ("GET", "/next", b"", False, True),
    ]
    # The app sees the headers as sent.
    assert requests[0].headers.get("connection") == "Upgrade, HTTP2-Settings"
    assert requests[0].headers.get("upgrade") == "h2c"


def test_websocket_upgrade_keeps_what_follows() -> None:
    parser = RequestParser()
    (request,) = parser.feed(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n\x81\x80"
    )
    assert request.upgrade and request.trailing == b"\x81\x80"
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_connect_ends_http_on_the_connection() -> None:
    parser = RequestParser()
    (request,) = parser.feed(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\ntunnel")
    assert (request.method, request.keep_alive, request.upgrade) == ("CONNECT", False, False)
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_framing_is_the_servers() -> None:
    head = encode_response_head(
        200, [("Content-Length", "1"), ("transfer-encoding", "gzip")], content_length=3
    )
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
    assert encode_response(204, [], b"body") == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert encode_response(304, [], b"body") == b"HTTP/1.1 304 Not Modified\r\n\r\n"
    assert (
        encode_response_head(304, [], content_length=None) == b"HTTP/1.1 304 Not Modified\r\n\r\n"
    )
    for status in (101, 99, 600):
        with pytest.raises(InvalidResponse):
            encode_response(status, [], b"")
