"""roost.protocol.http without a network: upgrades the server does not speak."""

from __future__ import annotations

import pytest

from roost.protocol.http import HttpRequest, RequestParser

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
