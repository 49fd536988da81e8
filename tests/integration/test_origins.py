"""Cross-site WebSocket hijacking: the default Origin policy, allow-lists and "*"."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from roost import Roost
from roost.origins import OriginPolicy, normalize_origin


def app_with(**endpoint_options: object) -> Roost:
    app = Roost(__file__, **endpoint_options.pop("app", {}))  # type: ignore[arg-type]

    @app.websocket("/ws", **endpoint_options)  # type: ignore[arg-type]
    async def ws(websocket):  # type: ignore[no-untyped-def]
        await websocket.send_text("hi")

    return app


async def status_of(url: str, **kwargs: object) -> int:
    try:
        async with websockets.connect(url, **kwargs) as ws:  # type: ignore[arg-type]
            assert await ws.recv() == "hi"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_default_refuses_cross_site_pages_and_says_what_to_configure(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(app_with()) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url, origin="https://evil.example"):
                pass
        response = info.value.response
        assert response.status_code == 403
        assert b"origins=['https://evil.example']" in response.body
        assert b"origins='*'" in response.body
        assert await status_of(url, origin="null") == 403  # sandboxed frames, file:// pages
        assert await status_of(url, origin=f"http://127.0.0.1:{server.port + 1}") == 403
        assert await status_of(url, origin=f"http://localhost:{server.port}") == 403
        # Same host (any case, any scheme of the page), and no Origin at all: accepted.
        assert await status_of(url, origin=f"http://127.0.0.1:{server.port}") == 101
        assert await status_of(url, origin=f"HTTPS://127.0.0.1:{server.port}") == 101
        assert await status_of(url) == 101


async def test_star_and_lists_per_endpoint_and_per_app(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(app_with(origins="*")) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        assert await status_of(url, origin="https://evil.example") == 101
        assert await status_of(url, origin="null") == 101
    app_wide = {"app": {"origins": ["https://App.Example:443", "http://other.example:8080"]}}
    async with serve(app_with(**app_wide)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        assert await status_of(url, origin="https://app.example") == 101
        assert await status_of(url, origin="http://other.example:8080") == 101
        assert await status_of(url, origin="http://other.example") == 403
        assert await status_of(url, origin=f"http://127.0.0.1:{server.port}") == 403
        assert await status_of(url) == 403  # an allow-list requires an Origin
    both = {"app": {"origins": ["https://app.example"]}, "origins": "*"}
    async with serve(app_with(**both)) as server:  # the endpoint's own policy wins
        url = f"ws://127.0.0.1:{server.port}/ws"
        assert await status_of(url, origin="https://evil.example") == 101


def test_bad_origin_options_are_refused_with_a_clear_error() -> None:
    for bad in (["app.example"], ["https://app.example/path"], ["ftp://x"], ["*", "https://a.b"]):
        with pytest.raises(ValueError, match="origins"):
            Roost(__file__, origins=bad)
    app = Roost(__file__)
    with pytest.raises(ValueError, match="origins"):
        app.websocket("/ws", origins=["not an origin"])


def test_origin_normalization_and_same_host_rules() -> None:
    assert normalize_origin("HTTPS://Example.COM:443") == "https://example.com"
    assert normalize_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalize_origin("http://user@example.com") is None
    assert normalize_origin("http://example.com:99999") is None
    policy = OriginPolicy()
    assert policy.check("http://example.com", "example.com:80") is None
    assert policy.check("https://example.com", "EXAMPLE.com") is None
    assert policy.check("http://[::1]:8080", "[::1]:8080") is None
    assert policy.check("http://example.com.evil.net", "example.com") is not None
    assert policy.check("http://example.com", None) is not None
    assert policy.check("http://example.com", "example.com:bad") is not None
