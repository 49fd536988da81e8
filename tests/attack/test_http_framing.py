"""HTTP/1.1 framing at the edges of RFC 9112, over raw sockets."""

from __future__ import annotations

from tests.timing import seconds

from .harness import raw, status_of, statuses, ws_handshake


def test_duplicate_host_is_rejected(target):
    """RFC 9112 section 3.2: a request with more than one Host gets 400. Two Hosts let a proxy
    and roost disagree on the authority."""
    r = raw(
        target.port,
        b"GET /hello HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    )
    assert status_of(r) == 400


def test_duplicate_host_cannot_satisfy_the_origin_check(target):
    """The same-host Origin policy compares Origin with Host; with two Hosts, roost uses the
    first, so a handshake from evil.example passes. Expected: 400 (or 403), never 101."""
    req = ws_handshake(
        "/open", host="evil.example\r\nHost: 127.0.0.1", extra="Origin: http://evil.example\r\n"
    )
    r = raw(target.port, req, timeout=seconds(1.5))
    assert status_of(r) in (400, 403)


def test_http11_without_host_is_rejected(target):
    """RFC 9112 section 3.2: an HTTP/1.1 request without Host gets 400."""
    r = raw(target.port, b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(r) == 400


def test_absolute_form_target_is_served(target):
    """RFC 9112 section 3.2.2: a server MUST accept the absolute form of a request target."""
    r = raw(
        target.port,
        b"GET http://127.0.0.1/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    assert status_of(r) == 200
    assert r.endswith(b"hello")


def test_connection_close_request_is_answered_despite_trailing_bytes(target):
    """A request with `Connection: close` followed by more bytes in the same packet: the request
    must still be answered (the extra bytes are ignored), not replaced by a 400."""
    r = raw(
        target.port,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert statuses(r) == [200]


def test_http10_request_is_answered_despite_pipelined_bytes(target):
    """HTTP/1.0 without keep-alive, with another request behind it: answer the first, close."""
    r = raw(target.port, b"GET /hello HTTP/1.0\r\n\r\nGET /hello HTTP/1.0\r\n\r\n")
    assert statuses(r)[:1] == [200]


def test_unsupported_major_version_is_refused(target):
    """`HTTP/2.0` in an HTTP/1 request line is not HTTP/1.1: expect 505 (or 400), not 200."""
    r = raw(target.port, b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n")
    assert status_of(r) in (400, 505)


def test_websocket_handshake_requires_http11(target):
    """RFC 6455 section 4.1: the opening handshake is an HTTP/1.1 (or later) GET."""
    req = ws_handshake("/open").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    r = raw(target.port, req, timeout=seconds(1.5))
    assert status_of(r) != 101
