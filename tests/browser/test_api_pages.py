"""The AsyncAPI and OpenAPI pages of the typed example render in real headless Chromium with
every request from the page going to the server itself (no CDN)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.browser.test_chat import CHROMIUM, TIMEOUT_MS
from tests.integration.guide_runner import ROOT, free_port
from tests.timing import seconds

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is needed")


@pytest.fixture
def example() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.typed.app"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ROOST_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + seconds(15)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=seconds(0.2)).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=seconds(15))


@pytest.fixture
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-component-update"],
        )
        try:
            yield context
        finally:
            context.close()


def offline_page(context, base: str, elsewhere: list[str]):  # type: ignore[no-untyped-def]
    """A page whose requests to anywhere but ``base`` are refused and recorded."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    own = urlsplit(base).netloc

    def route(r) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(r.request.url).netloc == own:
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


def test_the_asyncapi_page_shows_channels_messages_and_schemas(example: str, chromium) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    elsewhere: list[str] = []
    page = offline_page(chromium, example, elsewhere)
    page.goto(example + "/asyncapi")
    expect(page.locator("section.channel h2")).to_have_text(["/chat"])
    ops = page.locator("section.channel .op")
    expect(ops).to_have_count(3)
    expect(ops.nth(0)).to_contain_text("Client \u2192 server")
    expect(ops.nth(0)).to_contain_text("Join")
    expect(ops.nth(0)).to_contain_text("answered with JoinReply or Error")
    expect(ops.nth(2)).to_contain_text("Server \u2192 client")
    expect(ops.nth(2)).to_contain_text("Said")
    expect(page.locator("#schema-Said pre")).to_contain_text('"sender"')
    expect(page.locator("#schema-JoinReply pre")).to_contain_text('"reply"')
    page.click("text=Join >> nth=0")
    assert page.url.endswith("#schema-Join")
    assert elsewhere == []


def test_the_openapi_page_renders(example: str, chromium) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    elsewhere: list[str] = []
    page = offline_page(chromium, example, elsewhere)
    page.goto(example + "/docs")
    expect(page.locator("#ops")).not_to_contain_text("Loading")
    assert elsewhere == []
