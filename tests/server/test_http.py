"""HttpConnection, driven by bytes on an in-memory transport, with a real Server calling the
handler each test defines: keep-alive, pipelining, limits, timers, streaming, flow control,
connection limits, the upgrade, and handlers that fail."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import deque

import pytest

from roost.protocol.errors import ClientDisconnected, InvalidState
from roost.protocol.http import HttpRequest
from roost.server.http import HttpConnection
from roost.server.options import WebSocketOptions
from roost.server.serve import RequestHandler
from tests.protocol.wire import wire
from tests.server.conftest import MakeServer
from tests.server.fakes import SWITCHING, UPGRADE_REQUEST, FakeTransport, connect, eventually

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
HELLO = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
HELLO_CLOSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
    b"connection: close\r\n\r\nhello"
)
SERVER_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nInternal Server Error"
)

#: A test that breaks fails in seconds instead of hanging on an event that never comes.
pytestmark = pytest.mark.timeout(10)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode()


def plain(body: bytes, *, close: bool = False) -> bytes:
    """The bytes of a 200 text/plain response with ``body``."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n" % len(body)
    return head + (b"connection: close\r\n" if close else b"") + b"\r\n" + body


async def echo_path(request: HttpRequest, conn: HttpConnection) -> None:
    conn.send_response(200, [("content-type", "text/plain")], request.path.encode())


# -- keep-alive, pipelining, HTTP/1.0 ---------------------------------------------------------


async def test_keep_alive_answers_requests_one_after_another(make_server: MakeServer) -> None:
    server = make_server()
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(GET)
    await t.expect(HELLO)
    await eventually(lambda: conn.idle)
    t.feed(GET)
    await t.expect(HELLO * 2)
    assert not t.closing


async def test_request_split_across_reads(make_server: MakeServer) -> None:
    server = make_server()
    t = FakeTransport()
    conn = connect(server, t)
    for byte in range(len(GET) - 1):
        t.feed(GET[byte : byte + 1])
    assert conn.receiving and not conn.idle
    assert t.data == b""
    t.feed(GET[-1:])
    await t.expect(HELLO)


async def test_idle_keep_alive_connection_is_closed(make_server: MakeServer) -> None:
    server = make_server(keep_alive_timeout=0.05)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.until_lost()
    assert t.data == HELLO  # closed without another word
    assert not t.aborted
    assert server.connections == set() and server.admitted == 0


async def test_close_that_does_not_finish_is_aborted(make_server: MakeServer) -> None:
    server = make_server(keep_alive_timeout=0.02)
    t = FakeTransport(linger=True)  # a client that does not read what it is sent
    connect(server, t)
    t.feed(b"GET / HTTP/1.0\r\n\r\n")
    await t.until_lost()
    assert t.endings == ["close", "abort", "lost"]


async def test_pipelined_requests_are_answered_in_order(make_server: MakeServer) -> None:
    first_may_answer = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        if request.path == "/a":
            await first_may_answer.wait()
        await echo_path(request, conn)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(get("/a") + get("/b") + get("/c"))
    await asyncio.sleep(0)
    assert t.data == b""  # /b waits for /a
    first_may_answer.set()
    await t.expect(plain(b"/a") + plain(b"/b") + plain(b"/c"))


async def test_pipelining_is_bounded_by_pausing_reading(make_server: MakeServer) -> None:
    answering = asyncio.Event()
    answered = 0

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        nonlocal answered
        await answering.wait()
        answered += 1
        await echo_path(request, conn)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(b"".join(get(f"/{i}") for i in range(40)))
    assert not t.reading  # 40 requests queued: stop reading until they are answered
    answering.set()
    expected = b"".join(plain(f"/{i}".encode()) for i in range(40))
    await t.expect(expected)
    assert t.reading and t.pauses == 1
    assert answered == 40


async def test_http_1_0_closes_after_the_response(make_server: MakeServer) -> None:
    server = make_server()
    t = FakeTransport()
    connect(server, t)
    t.feed(b"GET / HTTP/1.0\r\n\r\n")
    await t.until_lost()
    assert t.data == HELLO_CLOSE


async def test_connection_close_request_closes_after_the_response(
    make_server: MakeServer,
) -> None:
    server = make_server()
    t = FakeTransport()
    connect(server, t)
    t.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await t.until_lost()
    assert t.data == HELLO_CLOSE


# -- bad input, limits and timers -------------------------------------------------------------


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data
    return int(data[9:12])


async def never_called(request: HttpRequest, conn: HttpConnection) -> None:
    raise AssertionError(f"the handler was called for {request.method} {request.target}")


@pytest.mark.parametrize(
    ("request_bytes", "options", "status", "reason"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", {}, 400, b""),
        (b"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", {}, 400, b""),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300 + b"\r\n\r\n",
            {"max_header_size": 256},
            431,
            b"request header fields too large",
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(5)) + b"\r\n",
            {"max_header_count": 4},
            431,
            b"too many request header fields",
        ),
        (
            b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n",
            {"max_header_size": 256},
            414,
            b"request URI too long",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
            {"max_body_size": 10},
            413,
            b"request body too large",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nabcdef\r\n6\r\nghijkl\r\n",
            {"max_body_size": 10},
            413,
            b"request body too large",
        ),
    ],
    ids=["tls-hello", "malformed-header", "431-size", "431-count", "414", "413", "413-chunked"],
)
async def test_bad_request_is_answered_and_closed(
    make_server: MakeServer,
    request_bytes: bytes,
    options: dict[str, int],
    status: int,
    reason: bytes,
) -> None:
    server = make_server(never_called, **options)
    t = FakeTransport()
    connect(server, t)
    t.feed(request_bytes + GET)  # what follows a request that could not be parsed is not HTTP
    await t.until_lost()
    assert status_of(t.data) == status
    head, _, body = t.data.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head
    assert body.startswith(reason)
    assert t.data.count(b"HTTP/1.1 ") == 1


async def test_slow_request_gets_408(make_server: MakeServer) -> None:
    server = make_server(never_called, handshake_timeout=0.05)
    t = FakeTransport()
    connect(server, t)
    t.feed(b"GET / HTTP/1.1\r\nHost: exa")
    await t.until_lost()
    assert status_of(t.data) == 408
    assert t.data.endswith(b"connection: close\r\n\r\nrequest timeout")


async def test_slow_second_request_gets_408(make_server: MakeServer) -> None:
    server = make_server(never_called_twice(), keep_alive_timeout=0.05)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.expect(HELLO)
    t.feed(b"GET / HTTP/1.1\r\nHost: exa")  # then nothing: keep_alive_timeout bounds it
    await t.until_lost()
    assert status_of(t.data[len(HELLO) :]) == 408
    assert t.data.endswith(b"connection: close\r\n\r\nrequest timeout")


def never_called_twice() -> RequestHandler:
    calls = 0

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        nonlocal calls
        calls += 1
        assert calls == 1, "the handler was called for a request that never arrived whole"
        await hello_response(conn)

    return handler


async def test_silent_connection_is_closed_without_an_answer(make_server: MakeServer) -> None:
    server = make_server(never_called, handshake_timeout=0.05)
    t = FakeTransport()
    connect(server, t)
    await t.until_lost()
    assert t.data == b""
    assert server.admitted == 0


async def test_complete_request_cancels_the_handshake_timer(make_server: MakeServer) -> None:
    answer = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await answer.wait()  # longer than handshake_timeout: the app's time is not limited
        conn.send_response(200, [("content-type", "text/plain")], b"hello")

    server = make_server(handler, handshake_timeout=0.02, keep_alive_timeout=60)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    timer_passed = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, timer_passed.set)
    await timer_passed.wait()
    assert not t.closing
    answer.set()
    await t.expect(HELLO)


# -- HEAD and bodiless statuses ---------------------------------------------------------------


async def test_head_gets_the_get_headers_without_the_body(make_server: MakeServer) -> None:
    server = make_server()
    t = FakeTransport()
    connect(server, t)
    t.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
    head = HELLO[: -len(b"hello")]
    await t.expect(head + HELLO)  # the next response is read intact


async def test_head_of_a_stream_writes_only_the_head(make_server: MakeServer) -> None:
    seen: list[bool] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [("content-type", "text/plain")])
        seen.append(conn.stream_has_body)
        await conn.write_chunk(b"body")
        conn.end_stream()

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    expected = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    await t.expect(expected)
    await eventually(lambda: bool(seen))
    assert seen == [False]
    t.feed(GET)  # still usable: the (empty) stream was finished
    await t.expect(expected + expected + b"4\r\nbody\r\n0\r\n\r\n")


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_status_drops_the_body(make_server: MakeServer, status: int) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.send_response(status, [("x-a", "1")], b"ignored")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET + GET)
    line = b"HTTP/1.1 204 No Content" if status == 204 else b"HTTP/1.1 304 Not Modified"
    await t.expect((line + b"\r\nx-a: 1\r\n\r\n") * 2)


async def test_second_response_to_one_request_is_refused(make_server: MakeServer) -> None:
    errors: list[Exception] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await hello_response(conn)
        for again in (
            lambda: conn.send_response(200, [], b"again"),
            lambda: conn.start_stream(200, []),
        ):
            try:
                again()
            except InvalidState as exc:
                errors.append(exc)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.expect(HELLO)
    await eventually(lambda: len(errors) == 2)
    assert all("already sent" in str(exc) for exc in errors)
    assert t.data == HELLO


async def hello_response(conn: HttpConnection) -> None:
    conn.send_response(200, [("content-type", "text/plain")], b"hello")


# -- streaming --------------------------------------------------------------------------------


async def stream_abcde(conn: HttpConnection, content_length: int | None) -> None:
    conn.start_stream(200, [("content-type", "text/plain")], content_length=content_length)
    assert conn.stream_has_body
    await conn.write_chunk(b"ab")
    await conn.write_chunk(b"")  # nothing: not the last chunk
    await conn.write_chunk(b"cde")
    conn.end_stream()


async def test_stream_without_length_is_chunked(make_server: MakeServer) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await stream_abcde(conn, None)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET + GET)
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    )
    await t.expect(response * 2)


async def test_stream_with_length_is_raw(make_server: MakeServer) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await stream_abcde(conn, 5)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET + GET)
    await t.expect(plain(b"abcde") * 2)


async def test_stream_longer_than_its_length_is_dropped(make_server: MakeServer) -> None:
    raised: list[Exception] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [("content-type", "text/plain")], content_length=5)
        await conn.write_chunk(b"abc")
        try:
            await conn.write_chunk(b"def")
        except InvalidState as exc:
            raised.append(exc)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.until_lost()
    assert t.aborted
    assert t.data == plain(b"abcde")[: -len(b"de")]  # not a byte past what was announced
    assert "longer than its content-length" in str(raised[0])


async def test_stream_shorter_than_its_length_is_dropped(make_server: MakeServer) -> None:
    raised: list[Exception] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [("content-type", "text/plain")], content_length=5)
        await conn.write_chunk(b"abc")
        try:
            conn.end_stream()
        except InvalidState as exc:
            raised.append(exc)

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.until_lost()
    assert t.aborted  # the client must not take the 3 bytes for the whole body
    assert "2 bytes short" in str(raised[0])


async def test_write_chunk_waits_while_writing_is_paused(make_server: MakeServer) -> None:
    streaming = asyncio.Event()
    write = asyncio.Event()
    written = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [])
        streaming.set()
        await write.wait()
        await conn.write_chunk(b"x")
        written.set()
        conn.end_stream()

    server = make_server(handler)
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(GET)
    await streaming.wait()
    conn.pause_writing()  # the transport's buffer is over its high-water mark
    write.set()
    await t.until(lambda: t.data.endswith(b"1\r\nx\r\n"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not written.is_set()
    conn.resume_writing()
    await written.wait()
    await t.until(lambda: t.data.endswith(b"0\r\n\r\n"))


async def test_paused_writer_learns_of_a_disconnect(make_server: MakeServer) -> None:
    raised: list[Exception] = []
    write = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [])
        await write.wait()
        try:
            await conn.write_chunk(b"x")
        except ClientDisconnected as exc:
            raised.append(exc)
            raise

    server = make_server(handler)
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(GET)
    conn.pause_writing()
    write.set()
    await t.until(lambda: t.data.endswith(b"1\r\nx\r\n"))
    t.lose()
    await eventually(lambda: not server.tasks)
    assert [type(exc) for exc in raised] == [ClientDisconnected]


async def test_client_gone_mid_response(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[str] = []
    go_on = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [])
        await go_on.wait()
        conn.send_response(200, [], b"")  # after a disconnect: nothing, and no error
        conn.end_stream()
        try:
            await conn.write_chunk(b"more")
        except ClientDisconnected:
            outcome.append("write_chunk")
        await conn.wait_disconnected()
        outcome.append("wait_disconnected")
        await conn.write_chunk(b"more")  # let it escape: roost knows the client is gone

    server = make_server(handler)
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(GET)
    await t.until(lambda: t.data.endswith(b"\r\n\r\n"))
    before = t.data
    t.lose()
    go_on.set()
    await eventually(lambda: not server.tasks)
    assert outcome == ["write_chunk", "wait_disconnected"]
    assert t.data == before
    assert conn.closed and conn.closing
    with pytest.raises(ClientDisconnected):
        conn.start_stream(200, [])
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert server.connections == set() and server.admitted == 0


# -- handlers that fail -----------------------------------------------------------------------


async def test_handler_error_is_a_500(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        raise RuntimeError("boom")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET + GET)
    await t.until_lost()
    assert t.data == SERVER_ERROR  # once: the connection is closed after it
    assert "error while handling GET '/'" in caplog.text
    assert "RuntimeError: boom" in caplog.text


async def test_handler_error_after_the_head_drops_the_connection(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.start_stream(200, [])
        await conn.write_chunk(b"half")
        raise RuntimeError("boom")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.until_lost()
    assert t.aborted  # a 500 cannot follow a head: the client sees the body cut short
    assert t.data.endswith(b"4\r\nhalf\r\n")
    assert "RuntimeError: boom" in caplog.text


async def test_no_request_is_handled_once_the_connection_is_dropped(
    make_server: MakeServer,
) -> None:
    handled: list[str] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        handled.append(request.path)
        conn.start_stream(200, [])
        await conn.write_chunk(b"half")
        raise RuntimeError("boom")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(get("/a") + get("/b"))  # a pipelined request must not run on a dead connection
    await t.until_lost()
    await eventually(lambda: not server.tasks)
    assert handled == ["/a"]
    assert t.data.count(b"HTTP/1.1 ") == 1


async def test_stream_left_unfinished_drops_the_connection(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[str] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        handled.append(request.path)
        conn.start_stream(200, [])
        await conn.write_chunk(b"half")  # and returns without end_stream()

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(get("/a") + get("/b"))
    await t.until_lost()
    assert t.aborted  # the next response would land inside this one's body
    assert t.data.endswith(b"4\r\nhalf\r\n")
    assert handled == ["/a"]
    assert "handler for GET '/a' did not end its stream" in caplog.text


async def test_handler_that_writes_nothing_is_a_500(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        return None

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(GET)
    await t.until_lost()
    assert t.data == SERVER_ERROR
    assert "handler for GET '/' wrote no response" in caplog.text


# -- connection limits ------------------------------------------------------------------------


def refusal(reason: bytes) -> bytes:
    return (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"retry-after: 1\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(reason)
    ) + reason


async def test_connection_over_the_limit_gets_503_after_its_request_head(
    make_server: MakeServer,
) -> None:
    answered: list[str] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        answered.append(conn.client[0])
        await hello_response(conn)

    server = make_server(handler, max_connections=1)
    first = FakeTransport(("10.0.0.1", 1000))
    connect(server, first)
    over = FakeTransport(("10.0.0.2", 1000))
    connect(server, over)
    assert server.admitted == 1
    assert over.data == b""  # nothing before the client has sent its request
    over.feed(b"GET / HTTP/1.1\r\nHost: exa")
    assert over.data == b""
    over.feed(b"mple.com\r\n\r\n" + GET)  # what follows the head is dropped
    assert over.data == refusal(b"too many connections")
    await over.until_lost()
    assert over.data == refusal(b"too many connections")
    first.feed(GET)
    await first.expect(HELLO)
    assert answered == ["10.0.0.1"]
    first.lose()
    assert server.admitted == 0  # released: the next one is served
    again = FakeTransport(("10.0.0.2", 1001))
    connect(server, again)
    again.feed(GET)
    await again.expect(HELLO)


async def test_connection_limit_per_ip(make_server: MakeServer) -> None:
    server = make_server(max_connections_per_ip=1)
    a1 = FakeTransport(("10.0.0.1", 1))
    connect(server, a1)
    a2 = FakeTransport(("10.0.0.1", 2))
    connect(server, a2)
    b1 = FakeTransport(("10.0.0.2", 1))
    connect(server, b1)
    assert server.connections_from("10.0.0.1") == 1
    assert server.connections_from("10.0.0.2") == 1
    a2.feed(GET)
    assert a2.data == refusal(b"too many connections from this address")
    b1.feed(GET)
    await b1.expect(HELLO)
    await a2.until_lost()
    assert server.connections_from("10.0.0.1") == 1  # the refused one was never counted
    a1.lose()
    assert server.connections_from("10.0.0.1") == 0
    a3 = FakeTransport(("10.0.0.1", 3))
    connect(server, a3)
    a3.feed(GET)
    await a3.expect(HELLO)


async def test_refused_connection_that_sends_nothing_is_answered_after_a_grace(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HttpConnection, "REFUSAL_GRACE", 0.02)
    server = make_server(max_connections=1)
    connect(server, FakeTransport())
    t = FakeTransport()
    connect(server, t)
    await t.until_lost()
    assert t.data == refusal(b"too many connections")


async def test_refused_connection_with_a_huge_head_is_answered_at_once(
    make_server: MakeServer,
) -> None:
    server = make_server(max_connections=1, max_header_size=256)
    connect(server, FakeTransport())
    t = FakeTransport()
    connect(server, t)
    t.feed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 300)
    assert t.data == refusal(b"too many connections")


# -- the upgrade ------------------------------------------------------------------------------


async def test_upgrade_hands_early_bytes_to_the_channel(make_server: MakeServer) -> None:
    may_upgrade = asyncio.Event()
    received: list[str | bytes] = []
    session_done = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> object:
        assert request.upgrade
        await may_upgrade.wait()  # the app checks something while the client already sends
        channel = conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)
        assert server.channels == {channel}

        async def session() -> None:
            for _ in range(3):
                received.append(await channel.recv())
            session_done.set()

        return session()

    server = make_server(handler)
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(UPGRADE_REQUEST + wire(0x1, b"one"))  # a frame right behind the request
    t.feed(wire(0x2, b"two"))  # and one while the handler has not answered yet
    assert t.data == b""
    may_upgrade.set()
    await t.until(lambda: bool(t.writes))
    assert t.data == SWITCHING
    t.feed(wire(0x1, b"three"))  # after the 101: straight to the channel
    await session_done.wait()
    assert received == ["one", b"two", "three"]
    assert conn.websocket is not None and not conn.idle


async def test_an_idle_websocket_holds_no_queue(make_server: MakeServer) -> None:
    """Memory per idle connection: once upgraded, the connection drops what held pending
    requests, and the channel makes its message queue only when something arrives."""
    holds_deque = asyncio.Event()
    queued: list[bool] = []

    async def handler(request: HttpRequest, conn: HttpConnection) -> object:
        channel = conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)

        async def session() -> None:
            queued.append(any(type(o) is deque for o in gc.get_referents(conn, channel)))
            holds_deque.set()
            await channel.recv()

        return session()

    server = make_server(handler)
    t = FakeTransport()
    conn = connect(server, t)
    t.feed(UPGRADE_REQUEST)
    await holds_deque.wait()
    assert queued == [False]
    channel = conn.websocket
    assert channel is not None
    t.feed(wire(0x1, b"hi"))
    assert any(type(o) is deque for o in gc.get_referents(channel))


async def test_upgrade_while_writing_is_paused(make_server: MakeServer) -> None:
    server = make_server()
    t = FakeTransport()
    conn = connect(server, t)
    conn.pause_writing()
    channel = conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)
    assert channel.write_paused  # the channel starts where the connection was
    sending = asyncio.ensure_future(channel.send_text("a"))
    await t.until(lambda: len(t.writes) == 2)
    assert not sending.done()
    conn.resume_writing()
    await sending
    assert not channel.write_paused


async def test_upgrade_refused_by_the_handler_closes_the_connection(
    make_server: MakeServer,
) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        conn.send_response(403, [("content-type", "text/plain")], b"no")

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(UPGRADE_REQUEST + wire(0x1, b"one") + GET)  # nothing after it is HTTP
    await t.until_lost()
    assert t.data == (
        b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\nno"
    )


async def test_too_many_early_bytes_drop_the_connection(make_server: MakeServer) -> None:
    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        await asyncio.Event().wait()  # never upgrades

    server = make_server(handler, max_header_size=256)
    t = FakeTransport()
    connect(server, t)
    t.feed(UPGRADE_REQUEST)
    t.feed(wire(0x2, b"x" * 300))
    await t.until_lost()
    assert t.aborted and t.data == b""


async def test_upgrade_after_the_client_left(make_server: MakeServer) -> None:
    raised: list[Exception] = []
    may_upgrade = asyncio.Event()
    handling = asyncio.Event()

    async def handler(request: HttpRequest, conn: HttpConnection) -> None:
        handling.set()
        await may_upgrade.wait()
        try:
            conn.upgrade(SWITCHING, options=WebSocketOptions(), deflate=None)
        except ClientDisconnected as exc:
            raised.append(exc)
            raise

    server = make_server(handler)
    t = FakeTransport()
    connect(server, t)
    t.feed(UPGRADE_REQUEST)
    await handling.wait()
    t.lose()
    may_upgrade.set()
    await eventually(lambda: not server.tasks)
    assert len(raised) == 1 and server.channels == set()
