"""Attacks that roost withstands today; kept as regression tests."""

from __future__ import annotations

import pytest

from .harness import raw, status_of, ws_handshake

HOOKED_HTTP = [
    "/secret/1", "/secret/1/", "/secret/1//", "/%73ecret/1", "/secret/1?x=1", "/secret%2F1",
    "/admin", "/admin/", "/%61dmin", "/admin?", "/files/a", "/files//a", "/files/%2e%2e/admin",
    "/api/data", "/api/data/", "/%61pi/data", "/api/items/1/", "/outer/inner/x", "/outer/inner/x/",
]  # fmt: skip


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_hooks_cover_every_spelling(target, method):
    for path in HOOKED_HTTP:
        req = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        assert status_of(raw(target.port, req.encode(), 2)) in (401, 404, 405), (method, path)


@pytest.mark.parametrize(
    "path", ["/chat/1", "/chat/1/", "/chat/%31", "/%63hat/1", "/chat%2F1", "/api/ws", "/api/ws/",
             "/%61pi/ws", "/outer/inner/ws", "/outer/inner/ws/"],
)  # fmt: skip
def test_websocket_hooks_cover_every_spelling(target, path):
    assert status_of(raw(target.port, ws_handshake(path), 1.5)) in (401, 404)


@pytest.mark.parametrize(
    ("host", "origin"),
    [("127.0.0.1", "http://evil.example"), ("127.0.0.1", "null"), ("127.0.0.1", ""),
     ("127.0.0.1", "http://127.0.0.1.evil.example"), ("user@127.0.0.1", "http://127.0.0.1"),
     ("127.0.0.1\r\nHost: evil.example", "http://evil.example")],
)  # fmt: skip
def test_cross_site_origins_are_refused(target, host, origin):
    r = raw(target.port, ws_handshake("/open", host, f"Origin: {origin}\r\n"), 1.5)
    malformed = "\r\nHost:" in host or "@" in host  # refused as bad requests (400) first
    assert status_of(r) == (400 if malformed else 403)


def test_response_splitting_is_refused(target):
    for v in ["a%0d%0aSet-Cookie:%20x=1", "a%0aX:1", "%E2%82%AC", "%00"]:
        r = raw(target.port, f"GET /reflect?v={v} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 1.5)
        assert status_of(r) == 500 and b"Set-Cookie" not in r
