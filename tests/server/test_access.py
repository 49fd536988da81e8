"""The access log: the common log format line (roost.server.access), and HttpConnection writing
one per answered request, refused connection and unparsable request, only when it is on."""

from __future__ import annotations

import logging
import re

import pytest

from roost.protocol.http import HttpRequest
from roost.server import access
from roost.server.access import log_access
from roost.server.http import HttpConnection
from tests.server.conftest import MakeServer
from tests.server.fakes import FakeTransport, connect, eventually

pytestmark = pytest.mark.timeout(10)

LINE = re.compile(r'^(\S+) - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(.*)" (\d+) (\S+)$')


def access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, ...]]:
    """The access lines logged so far, parsed."""
    found = []
    for record in caplog.records:
        if record.name == "roost.access":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            found.append(match.groups())
    return found


@pytest.fixture
def on(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="roost.access")
    return caplog


def test_the_line(on: pytest.LogCaptureFixture) -> None:
    log_access("10.0.0.7", "GET", "/items?id=1", "1.1", 200, 2326)
    log_access("10.0.0.7", "HEAD", "/", "1.0", 304, 0)
    log_access("", None, "", "", 400, 19)
    log_access("::1", "GET", '/a"b\\c\x1bd\u00e9', "1.1", 200, 1)
    assert access_lines(on) == [
        ("10.0.0.7", "GET /items?id=1 HTTP/1.1", "200", "2326"),
        ("10.0.0.7", "HEAD / HTTP/1.0", "304", "-"),
        ("-", "-", "400", "19"),
        ("::1", 'GET /a\\"b\\\\c\\x1bd\\xe9 HTTP/1.1', "200", "1"),
    ]
    record = on.records[0]
    assert (record.client, record.status, record.bytes) == ("10.0.0.7", 200, 2326)  # type: ignore[attr-defined]


async def stream(request: HttpRequest, conn: HttpConnection) -> None:
    if request.path == "/stream":
        conn.start_stream(200, [("content-type", "text/plain")])
        await conn.write_chunk(b"abc")
        await conn.write_chunk(b"de")
        conn.end_stream()
    else:
        conn.send_response(204 if request.path == "/empty" else 200, [], b"body!")


async def test_one_line_per_answer(make_server: MakeServer, on: pytest.LogCaptureFixture) -> None:
    server = make_server(stream, max_connections=1)
    assert server.access_log
    t = FakeTransport(("10.1.2.3", 4000))
    conn = connect(server, t)
    for path in ("/stream", "/empty", "/x"):
        t.feed(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        await eventually(lambda: conn.idle)
    t.feed(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
    await eventually(lambda: len(access_lines(on)) == 4)
    refused = FakeTransport(("10.9.9.9", 1))
    connect(server, refused)  # over max_connections
    refused.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    t.feed(b"\x00junk\r\n\r\n")
    await eventually(lambda: len(access_lines(on)) == 6)
    *answered, unparsable = access_lines(on)
    assert answered == [
        ("10.1.2.3", "GET /stream HTTP/1.1", "200", "5"),
        ("10.1.2.3", "GET /empty HTTP/1.1", "204", "-"),
        ("10.1.2.3", "GET /x HTTP/1.1", "200", "5"),
        ("10.1.2.3", "HEAD /x HTTP/1.1", "200", "-"),
        ("10.9.9.9", "-", "503", "20"),
    ]
    assert unparsable[:3] == ("10.1.2.3", "-", "400") and unparsable[3].isdigit()


async def test_off_costs_no_call(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="roost.access")
    calls: list[object] = []
    monkeypatch.setattr("roost.server.http.log_access", lambda *a: calls.append(a))
    server = make_server(stream)
    assert not server.access_log
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
    await eventually(lambda: conn.idle)
    t.feed(b"\x00junk\r\n\r\n")
    await t.until_lost()
    assert calls == []
    assert access.access_logger.name == "roost.access"
