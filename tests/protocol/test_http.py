"""roost.protocol.http: HTTP/1.1 requests in (RFC 9112 framing, parsed by httptools) with
size limits, responses out."""

from __future__ import annotations

import gc

import httptools
import pytest

from roost.protocol import http
from roost.protocol.errors import HttpError, InvalidResponse
from roost.protocol.http import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    Headers,
    HttpRequest,
    RequestParser,
    body_allowed,
    encode_chunk,
    encode_response,
    encode_response_head,
    header_line,
    is_token,
    status_line,
)

GET = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


def post(body: bytes, *extra: bytes) -> bytes:
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(extra) + b"\r\n" + body


H2C_HEAD = (
    b"POST /p HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
)


def feed_bytewise(parser: RequestParser, data: bytes) -> list[HttpRequest]:
    return [r for i in range(len(data)) for r in parser.feed(data[i : i + 1])]


def error(parser: RequestParser, *chunks: bytes) -> HttpError:
    with pytest.raises(HttpError) as info:
        for chunk in chunks:
            parser.feed(chunk)
    return info.value


class TestHeaders:
    def test_case_insensitive_and_multi_valued(self) -> None:
        """RFC 9110 section 5.1: field names are case-insensitive; a field may repeat."""
        headers = Headers([("Host", "a"), ("X-Tag", "1"), ("x-tag", "2")])
        assert headers.get("HOST") == "a" and headers["x-TAG"] == "1"
        assert headers.get_all("X-Tag") == ["1", "2"]
        assert headers.get("missing") is None and headers.get("missing", "d") == "d"
        assert headers.get_all("missing") == []
        assert "host" in headers and "nope" not in headers and 42 not in headers
        assert list(headers) == ["host", "x-tag"] and len(headers) == 2
        assert headers.items() == [("Host", "a"), ("X-Tag", "1"), ("x-tag", "2")]
        assert headers.to_dict() == {"host": "a", "x-tag": "1"}
        assert repr(headers) == "Headers([('Host', 'a'), ('X-Tag', '1'), ('x-tag', '2')])"
        with pytest.raises(KeyError):
            headers["missing"]

    def test_copies_are_returned(self) -> None:
        headers = Headers([("A", "1")])
        headers.get_all("a").append("2")
        headers.items().append(("B", "2"))
        assert headers.get_all("a") == ["1"] and headers.items() == [("A", "1")]
        assert len(Headers()) == 0

    def test_built_from_a_dict_or_nothing(self) -> None:
        headers = Headers({"Content-Type": "text/html", "X-N": 1})  # type: ignore[dict-item]
        assert headers.items() == [("Content-Type", "text/html"), ("X-N", "1")]
        assert headers["content-type"] == "text/html"
        assert Headers(None).is_empty() and not headers.is_empty()
        assert Headers(iter([("A", "1")])).items() == [("A", "1")]  # any iterable of pairs

    def test_compact_drops_the_index_and_lookups_rebuild_it(self) -> None:
        def dicts_held() -> int:
            return sum(type(o) is dict for o in gc.get_referents(headers))

        headers = Headers([("Host", "a"), ("X-Tag", "1")])
        assert headers.get("x-tag") == "1" and dicts_held() == 1  # the lookup index
        headers.compact()
        assert dicts_held() == 0
        assert headers.get("HOST") == "a" and headers.get_all("x-tag") == ["1"]
        assert dicts_held() == 1

    def test_set_append_remove(self) -> None:
        headers = Headers([("X-Tag", "1"), ("x-tag", "2"), ("Other", "o")])
        assert headers.get("x-tag") == "1"  # indexed before the changes below
        headers.set("X-TAG", "3")
        assert headers.get_all("x-tag") == ["3"]
        assert headers.items() == [("Other", "o"), ("X-TAG", "3")]
        headers["New"] = "n"
        headers.append("new", "m")
        assert headers.get_all("NEW") == ["n", "m"] and headers.contains("new")
        assert headers.keys() == ["other", "x-tag", "new"]
        assert headers.values() == ["o", "3", "n"]
        headers.populate_from_dict({"Z": "z"})
        assert headers["z"] == "z"
        headers.remove("new")
        headers.remove("absent")
        del headers["z"]
        assert "new" not in headers and "z" not in headers
        with pytest.raises(KeyError):
            del headers["z"]
        assert headers.items() == [("Other", "o"), ("X-TAG", "3")]


class TestRequestParser:
    def test_defaults(self) -> None:
        parser = RequestParser()
        assert parser.max_header_size == DEFAULT_MAX_HEADER_SIZE == 16 * 1024
        assert parser.max_header_count == DEFAULT_MAX_HEADER_COUNT == 100
        assert parser.max_body_size == DEFAULT_MAX_BODY_SIZE == 10 * 1024 * 1024
        assert parser.upgrade_protocols == frozenset({"websocket"})
        assert RequestParser(upgrade_protocols=["WebSocket", "h2c"]).upgrade_protocols == {
            "websocket",
            "h2c",
        }

    def test_simple_get(self) -> None:
        parser = RequestParser()
        assert not parser.in_progress
        (request,) = parser.feed(GET)
        assert request == HttpRequest(
            method="GET",
            target="/chat?room=1",
            path="/chat",
            query_string="room=1",
            headers=request.headers,
            body=b"",
            keep_alive=True,
            upgrade=False,
            http_version="1.1",
        )
        assert request.headers.items() == [("Host", "example.com"), ("Accept", "*/*")]
        assert not parser.in_progress

    def test_byte_by_byte(self) -> None:
        parser = RequestParser()
        requests = []
        for i in range(len(GET)):
            requests += parser.feed(GET[i : i + 1])
            assert parser.in_progress == (i < len(GET) - 1)
        assert [r.target for r in requests] == ["/chat?room=1"]

    @pytest.mark.parametrize(
        ("target", "path", "query"),
        [
            ("/", "/", ""),
            ("/a%20b/%E2%9C%93", "/a b/✓", ""),
            ("/p?x=1&y=%20", "/p", "x=1&y=%20"),
            ("/p#frag", "/p", ""),
            ("/p?q=1#frag", "/p", "q=1"),
            ("/p?", "/p", ""),
            ("*", "*", ""),
        ],
    )
    def test_target_split(self, target: str, path: str, query: str) -> None:
        """RFC 9112 section 3.2: the path is percent-decoded, the query kept as sent, a
        fragment (never sent by a browser) dropped."""
        method = b"OPTIONS" if target == "*" else b"GET"
        (request,) = RequestParser().feed(
            method + b" " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (request.target, request.path, request.query_string) == (target, path, query)

    def test_body_with_content_length(self) -> None:
        """RFC 9112 section 6.2."""
        parser = RequestParser()
        data = post(b"hello world")
        assert parser.feed(data[:-5]) == []
        assert parser.in_progress
        (request,) = parser.feed(data[-5:])
        assert (request.method, request.body) == ("POST", b"hello world")
        assert not parser.in_progress

    def test_chunked_body(self) -> None:
        """RFC 9112 section 7.1."""
        data = (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        (request,) = RequestParser().feed(data)
        assert request.body == b"hello world"

    def test_body_arriving_after_its_head(self) -> None:
        """The head and the body come in separate reads, the body in several: only the head
        counts against the header limit, and the request is in progress until it is whole."""
        parser = RequestParser(max_header_size=1024)
        body = b"x" * 40_000
        data = post(body)
        head = data[: -len(body)]
        assert parser.feed(head) == []
        assert parser.in_progress
        for start in range(0, len(body) - 10_000, 10_000):
            assert parser.feed(body[start : start + 10_000]) == []
            assert parser.in_progress
        (request,) = parser.feed(body[-10_000:])
        assert request.body == body
        assert not parser.in_progress
        (again,) = parser.feed(GET)  # the next request on the connection
        assert again.method == "GET"

    def test_pipelined_requests(self) -> None:
        """RFC 9112 section 9.3.2: a client may send several requests without waiting."""
        parser = RequestParser()
        requests = parser.feed(GET + post(b"abc") + GET[:10])
        assert [(r.method, r.body) for r in requests] == [("GET", b""), ("POST", b"abc")]
        assert parser.in_progress
        (last,) = parser.feed(GET[10:])
        assert last.path == "/chat"

    @pytest.mark.parametrize(
        ("head", "keep_alive", "version"),
        [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True, "1.1"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False, "1.1"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n", True, "1.1"),
            (b"GET / HTTP/1.0\r\n\r\n", False, "1.0"),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True, "1.0"),
        ],
    )
    def test_keep_alive_and_version(self, head: bytes, keep_alive: bool, version: str) -> None:
        """RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with
        "keep-alive"."""
        (request,) = RequestParser().feed(head)
        assert (request.keep_alive, request.http_version) == (keep_alive, version)

    def test_upgrade_keeps_the_bytes_that_follow(self) -> None:
        """RFC 9110 section 7.8: after the upgrade request, the bytes are the new protocol's
        (here the first WebSocket frame, sent without waiting for the 101)."""
        head = (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        (request,) = RequestParser().feed(head + b"\x81\x85frame")
        assert request.upgrade and request.trailing == b"\x81\x85frame"
        parser = RequestParser()
        assert parser.feed(head[:-1]) == []
        (request,) = parser.feed(head[-1:])
        assert request.upgrade and request.trailing == b""

    @pytest.mark.parametrize("bytewise", [False, True])
    def test_other_upgrade_is_plain_http_with_its_body(self, bytewise: bool) -> None:
        """RFC 9110 section 7.8: a server may ignore an upgrade to a protocol it does not
        speak (h2c): the request, its body and the requests after it are HTTP/1.1."""
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
        assert not parser.in_progress

    def test_other_upgrade_with_only_the_upgrade_option(self) -> None:
        """The replayed head drops a Connection header left empty without "upgrade"."""
        data = b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
        (request,) = RequestParser().feed(data)
        assert (request.path, request.upgrade, request.headers.get("connection")) == (
            "/p",
            False,
            "upgrade",
        )

    def test_websocket_upgrade_keeps_what_follows(self) -> None:
        parser = RequestParser()
        (request,) = parser.feed(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
            b"\x81\x80"
        )
        assert request.upgrade and request.trailing == b"\x81\x80"
        assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []

    def test_upgrade_protocols_are_configurable(self) -> None:
        parser = RequestParser(upgrade_protocols=["H2C"])
        assert parser.upgrade_protocols == frozenset({"h2c"})
        (request,) = parser.feed(H2C_HEAD + b"\r\nrest")
        assert request.upgrade and request.trailing == b"rest"

    def test_connect_ends_http_on_the_connection(self) -> None:
        """RFC 9110 section 9.3.6: after CONNECT the connection carries a tunnel's bytes."""
        parser = RequestParser()
        (request,) = parser.feed(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\ntunnel")
        assert (request.method, request.keep_alive, request.upgrade) == ("CONNECT", False, False)
        assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []

    def test_long_target_is_414(self) -> None:
        """RFC 9112 section 3: a server that receives a target longer than it parses
        answers 414."""
        target = b"/" + b"a" * 2000
        exc = error(RequestParser(max_header_size=1000), b"GET " + target + b" HTTP/1.1\r\n")
        assert (exc.status, exc.reason) == (414, "request URI too long")
        parser = RequestParser(max_header_size=1000)
        exc = error(parser, b"GET " + target[:900], target[900:] + b" HTTP/1.1\r\n\r\n")
        assert exc.status == 414

    def test_too_many_header_fields_is_431(self) -> None:
        """RFC 6585 section 5."""
        fields = b"Host: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10))
        exc = error(RequestParser(max_header_count=10), b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
        assert (exc.status, exc.reason) == (431, "too many request header fields")
        (ok,) = RequestParser(max_header_count=11).feed(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
        assert len(ok.headers.items()) == 11

    def test_large_header_fields_are_431(self) -> None:
        """RFC 6585 section 5: the fields as parsed, whatever the reads."""
        big = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
        exc = error(RequestParser(max_header_size=1000), big)
        assert (exc.status, exc.reason) == (431, "request header fields too large")
        many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 90) for i in range(12))
        assert error(RequestParser(max_header_size=1000), many).status == 431

    def test_unfinished_head_over_the_limit_is_431(self) -> None:
        """A head that never ends (one endless field line) is refused once it passes the
        limit, before the parser sees a whole field."""
        parser = RequestParser(max_header_size=1000)
        assert parser.feed(b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 500) == []
        exc = error(parser, b"a" * 600)
        assert (exc.status, exc.reason) == (431, "request header fields too large")

    def test_declared_body_over_the_limit_is_413(self) -> None:
        """RFC 9110 section 15.5.14: refused from the Content-Length, before the body."""
        parser = RequestParser(max_body_size=10)
        exc = error(parser, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        assert (exc.status, exc.reason) == (413, "request body too large")
        (ok,) = RequestParser(max_body_size=10).feed(post(b"0123456789"))
        assert ok.body == b"0123456789"

    def test_chunked_body_over_the_limit_is_413(self) -> None:
        parser = RequestParser(max_body_size=10)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        exc = error(parser, head + b"6\r\nhello \r\n", b"5\r\nworld\r\n0\r\n\r\n")
        assert (exc.status, exc.reason) == (413, "request body too large")

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (b"", "Empty Content-Length"),
            (b"abc", "Invalid character in Content-Length"),
            (b"-1", "Invalid character in Content-Length"),
            (b"+5", "Invalid character in Content-Length"),
            (b"5, 5", "Invalid character in Content-Length"),
            (b"\xb2", "Invalid character in Content-Length"),  # latin-1 superscript two
        ],
    )
    def test_invalid_content_length_is_400(self, value: bytes, reason: str) -> None:
        """RFC 9112 section 6.3: an invalid Content-Length is an unrecoverable error."""
        exc = error(RequestParser(), b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n")
        assert (exc.status, exc.reason) == (400, f"malformed HTTP request: {reason}")

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", "invalid HTTP method"),
            (b"get / HTTP/1.1\r\n\r\n", "invalid HTTP method"),
            (b"GET / HTTP/9.9\r\n\r\n", "malformed HTTP request: Invalid HTTP version"),
            (b"GET /\xff HTTP/1.1\r\n\r\n", "malformed HTTP request: Invalid char in url path"),
            (
                b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                "malformed HTTP request: Invalid header token",
            ),
            (
                b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
                "malformed HTTP request: Invalid header value char",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "malformed HTTP request: Duplicate Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                "malformed HTTP request: Content-Length can't be present with Transfer-Encoding",
            ),
        ],
    )
    def test_malformed_requests_are_400(self, data: bytes, reason: str) -> None:
        """Including the two request-smuggling shapes of RFC 9112 section 6.3."""
        exc = error(RequestParser(), data)
        assert (exc.status, exc.reason) == (400, reason)

    def test_unexpected_failure_in_a_callback_is_400(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bug while handling a parsed piece still answers the client, with 400."""

        def broken(self: object, name: bytes, value: bytes) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(http._Requests, "on_header", broken)  # the httptools callbacks
        exc = error(RequestParser(), GET)
        assert (exc.status, exc.reason) == (400, "malformed HTTP request")


class TestRequestFraming:
    """RFC 9112: the version, Host, the absolute form, and the end of a connection."""

    def test_other_major_versions_are_505(self) -> None:
        exc = error(RequestParser(), b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        assert exc.status == 505 and "HTTP/1.1" in exc.reason

    def test_host_is_required_once_in_http11(self) -> None:
        """Section 3.2: a request with no Host, or more than one, is answered 400."""
        exc = error(RequestParser(), b"GET / HTTP/1.1\r\n\r\n")
        assert (exc.status, exc.reason) == (400, "missing Host header (required by HTTP/1.1)")
        exc = error(RequestParser(), b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")
        assert (exc.status, exc.reason) == (400, "repeated Host header")
        (old,) = RequestParser().feed(b"GET / HTTP/1.0\r\n\r\n")  # 1.0 had no Host yet
        assert old.headers.get("host") is None

    @pytest.mark.parametrize(
        "host", ["evil.example/reset?next=x#", "user@evil.example", "a b", "x:80a", "[::1"]
    )
    def test_a_host_that_is_not_a_host_is_400(self, host: str) -> None:
        head = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        assert (error(RequestParser(), head).status, "invalid Host header") == (
            400,
            error(RequestParser(), head).reason,
        )

    @pytest.mark.parametrize("host", ["", "example.com", "EX.com:8080", "[::1]:80", "127.0.0.1"])
    def test_valid_hosts(self, host: str) -> None:
        (req,) = RequestParser().feed(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert req.headers.get("host") == host

    def test_absolute_form_target(self) -> None:
        """Section 3.2.2: the target's authority replaces the Host header."""
        (req,) = RequestParser().feed(
            b"GET http://Example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
        )
        assert (req.path, req.query_string, req.target) == (
            "/a/b",
            "q=1",
            "http://Example.com:8080/a/b?q=1",
        )
        assert req.headers.get_all("host") == ["Example.com:8080"]
        (bare,) = RequestParser().feed(b"GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n")
        assert bare.path == "/"

    @pytest.mark.parametrize(
        "head",
        [
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /a HTTP/1.0\r\n\r\n",
        ],
    )
    def test_bytes_after_a_closing_request_are_ignored(self, head: bytes) -> None:
        parser = RequestParser()
        (req,) = parser.feed(head + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n\x00garbage")
        assert (req.path, req.keep_alive) == ("/a", False)
        assert parser.feed(b"more garbage") == []
        assert not parser.in_progress


class TestResponses:
    def test_status_line(self) -> None:
        assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
        assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
        assert status_line(431) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        assert status_line(599) == b"HTTP/1.1 599 Unknown\r\n"
        assert status_line(599) is status_line(599)  # cached
        for status in (99, 600, -1):
            with pytest.raises(InvalidResponse, match="is not between 100 and 599"):
                status_line(status)

    def test_body_allowed(self) -> None:
        """RFC 9110 sections 15.2, 15.3.5 and 15.4.5: no body in 1xx, 204 and 304."""
        assert [s for s in (100, 101, 200, 204, 301, 304, 404, 500) if body_allowed(s)] == [
            200,
            301,
            404,
            500,
        ]

    def test_response_with_content_length(self) -> None:
        assert encode_response(200, [("content-type", "text/plain")], b"hi") == (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
        )

    def test_head_response_and_connection_close(self) -> None:
        """RFC 9110 section 9.3.2: HEAD gets GET's headers without the body."""
        assert encode_response(200, [], b"hello", keep_alive=False, include_body=False) == (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
        )

    def test_framing_is_the_servers(self) -> None:
        """RFC 9112 section 6: the server writes Content-Length or Transfer-Encoding itself;
        a 204 or 304 gets neither, and never a body."""
        head = encode_response_head(
            200,
            [("Content-Length", "1"), ("transfer-encoding", "gzip"), ("x-fourteen-chr", "k")],
            content_length=3,
        )
        assert head == b"HTTP/1.1 200 OK\r\nx-fourteen-chr: k\r\ncontent-length: 3\r\n\r\n"
        assert encode_response(204, [], b"body") == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert encode_response(304, [], b"body") == b"HTTP/1.1 304 Not Modified\r\n\r\n"
        assert (
            encode_response_head(304, [], content_length=None)
            == b"HTTP/1.1 304 Not Modified\r\n\r\n"
        )

    @pytest.mark.parametrize("status", [99, 100, 101, 600])
    def test_only_final_statuses(self, status: int) -> None:
        with pytest.raises(InvalidResponse):
            encode_response(status, [], b"")

    def test_chunked_stream(self) -> None:
        """RFC 9112 section 7.1."""
        head = encode_response_head(200, [("x-a", "1")], content_length=None)
        assert head == b"HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        assert encode_chunk(b"hello world, " * 2) == b"1a\r\nhello world, hello world, \r\n"
        assert encode_chunk(b"") == b"0\r\n\r\n"


class TestHeaderLine:
    """RFC 9110 section 5.1 (names are tokens) and 5.5 (values are visible characters, spaces,
    tabs and obs-text): nothing else reaches the wire, so a header can never end the head
    early or add headers of its own (response splitting)."""

    def test_tokens(self) -> None:
        assert is_token("X-Custom_Header.1~") and is_token("!#$%&'*+-.^_`|~")
        for text in ["", "a b", "a:b", "a\r", "é", "(x)", "a/b"]:
            assert not is_token(text), text

    def test_good_lines(self) -> None:
        assert header_line("X-A", "plain value") == b"X-A: plain value\r\n"
        assert header_line(
            "X-A", "tab\there, obs-text é"
        ) == "X-A: tab\there, obs-text é\r\n".encode("latin-1")
        assert header_line("X-A", "") == b"X-A: \r\n"

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("x-a", "1\r\nSet-Cookie: evil", "has a line break"),
            ("x-a", "1\n", "has a line break"),
            ("x-a", "\x00", "a control character"),
            ("x-a", "\x7f", "a control character"),
            ("x-a", "snow ☃", "outside Latin-1"),
            ("x\r\ny", "1", "is not an RFC 9110 token"),
            ("x y", "1", "is not an RFC 9110 token"),
            ("", "1", "is not an RFC 9110 token"),
            ("x-a", 1, "is not a pair of str"),
            (b"x-a", "1", "is not a pair of str"),
        ],
    )
    def test_bad_lines_are_refused(self, name: object, value: object, message: str) -> None:
        with pytest.raises(InvalidResponse, match=message):
            header_line(name, value)  # type: ignore[arg-type]
        with pytest.raises(InvalidResponse):
            encode_response_head(200, [(name, value)], content_length=0)  # type: ignore[list-item]

    def test_str_subclasses_are_accepted(self) -> None:
        class Name(str):
            pass

        assert header_line(Name("X-Sub"), Name("v")) == b"X-Sub: v\r\n"

    def test_many_distinct_names(self) -> None:
        """Names checked once are remembered, up to a bound (names may come from requests);
        past it every name is still checked."""
        for i in range(600):
            assert header_line(f"X-N{i}", "v") == b"X-N%d: v\r\n" % i
        with pytest.raises(InvalidResponse):
            header_line("X N", "v")


def test_a_dropped_parser_is_freed_without_the_cycle_collector() -> None:
    """httptools keeps the callbacks it calls: were they the parser's own methods, parser and
    httptools would form a cycle, kept until the next collection."""

    def httptools_parsers() -> int:
        return sum(type(o) is httptools.HttpRequestParser for o in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = httptools_parsers()
        parser = RequestParser()
        requests = parser.feed(GET + GET[:20])
        assert len(requests) == 1 and parser.in_progress
        assert len(parser.feed(GET[20:])) == 1
        # An upgrade to a protocol roost does not speak starts a new httptools parser.
        assert [r.path for r in parser.feed(H2C_HEAD + b"Content-Length: 0\r\n\r\n" + GET)] == [
            "/p",
            "/chat",
        ]
        del parser, requests
        after = httptools_parsers()
    finally:
        gc.enable()
    assert after == before
