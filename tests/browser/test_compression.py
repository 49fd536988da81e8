"""permessage-deflate with headless Chromium: the offer it makes, the answer roost gives, and
compressed messages both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from roost import Response, Roost
from roost.testing import TestClient
from tests.browser.test_chat import CHROMIUM, TIMEOUT_MS, browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is needed")

PAGE = """<!doctype html><title>deflate</title><script>
window.talk = (messages) => new Promise((resolve, reject) => {
  const ws = new WebSocket(`ws://${location.host}/echo`);
  const got = [];
  ws.onopen = () => messages.forEach((m) => ws.send(m));
  ws.onmessage = (e) => {
    got.push(e.data);
    if (got.length === messages.length + 1) { ws.close(); resolve([ws.extensions, got]); }
  };
  ws.onerror = () => reject(new Error("websocket error"));
});
</script>"""


@pytest.fixture
def server() -> Iterator[TestClient]:
    app = Roost(__file__)

    @app.get("/")
    def page():  # type: ignore[no-untyped-def]
        return Response(200, {"content-type": "text/html; charset=utf-8"}, PAGE)

    @app.websocket("/echo")
    async def echo(websocket):  # type: ignore[no-untyped-def]
        # First what the browser offered, then every message back.
        offered = websocket.headers.get("sec-websocket-extensions")
        count = 0
        while True:
            message = await websocket.receive()
            count += 1
            await websocket.send(message)
            if count == 3:
                await websocket.send_text(offered or "")

    with TestClient(app) as client:
        yield client


def test_chromium_negotiates_and_round_trips(server: TestClient, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"http://127.0.0.1:{server.port}/")
    messages = ["short", "a longer message that roost compresses " * 20, "é✓" * 400]
    extensions, got = page.evaluate("(m) => window.talk(m)", messages)
    assert extensions == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=12"
    )
    assert got[:3] == messages
    assert got[3] == "permessage-deflate; client_max_window_bits"
