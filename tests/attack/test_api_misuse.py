"""Documented calls made the way the docs show them."""

from __future__ import annotations

from .harness import raw, server, status_of


def test_add_cors_with_one_origin_string():
    """`add_cors("https://app.example", allow_credentials=True)` is accepted without error, so it
    must allow that origin (or raise, as the wildcard does); today it silently allows nothing."""
    with server("cors_app.py", env={"ATTACK_CORS": "string"}) as proc:
        r = raw(
            proc.port,
            b"GET /me HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert status_of(r) == 200
    assert b"access-control-allow-origin: https://app.example" in r.lower()


def test_app_broadcast_accepts_the_endpoint_object():
    """docs/websocket.md: `await app.broadcast(endpoint, data)`. The object `@app.websocket`
    returns is a WebSocketEndpoint; passing it raises AttributeError (500) today."""
    with server(env={}) as proc:
        r = raw(proc.port, b"GET /bcast_send_obj HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(r) == 200
