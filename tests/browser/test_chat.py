"""The chat demo in real headless Chromium: two pages share a room, a third sees none of it,
a message the typed protocol refuses is answered with an error the page shows, and the
page links to the AsyncAPI page of that protocol."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.guide_runner import ROOT, free_port
from tests.timing import seconds

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is needed")
TIMEOUT_MS = 10_000


@pytest.fixture
def demo() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.chat.app", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=seconds(0.2)).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=seconds(15))


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield context
        finally:
            context.close()


def join(context, url: str, name: str, room: str):  # type: ignore[no-untyped-def]
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.fill("#name", name)
    page.fill("#room", room)
    page.click("#join-button")
    page.wait_for_selector("#chat:not([hidden])")
    return page


def say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#text", text)
    page.click("#send-button")


def test_two_pages_chat_and_a_third_room_sees_nothing(demo: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    ann = join(browser, demo, "Ann", "alpha")
    bob = join(browser, demo, "Bob", "alpha")
    eve = join(browser, demo, "Eve", "beta")

    expect(ann.locator("#members li")).to_have_text(["Ann", "Bob"])
    expect(bob.locator("#members li")).to_have_text(["Ann", "Bob"])
    expect(eve.locator("#members li")).to_have_text(["Eve"])

    say(ann, "hello from Ann <b>bold?</b>")
    say(bob, "hi Ann")
    for page in (ann, bob):
        expect(page.locator("#messages li .text")).to_have_text(
            ["hello from Ann <b>bold?</b>", "hi Ann"]
        )
        expect(page.locator("#messages li .from")).to_have_text(["Ann", "Bob"])
    assert ann.locator("#messages b").count() == 0  # shown as text, never as HTML

    say(eve, "anyone?")
    expect(eve.locator("#messages li .text")).to_have_text(["anyone?"])
    expect(ann.locator("#messages li")).to_have_count(2)
    expect(eve.locator("#messages li .text")).not_to_contain_text(["hi Ann"])

    # A late joiner gets the room's history; the status feed reports the connections.
    cat = join(browser, demo, "Cat", "alpha")
    expect(cat.locator("#messages li .text")).to_have_text(
        ["hello from Ann <b>bold?</b>", "hi Ann"]
    )
    expect(ann.locator("#members li")).to_have_text(["Ann", "Bob", "Cat"])
    expect(cat.locator("#status")).to_contain_text("4 connected")

    bob.close()
    expect(ann.locator("#members li")).to_have_text(["Ann", "Cat"])


def test_a_refused_message_shows_its_error_and_the_chat_goes_on(demo: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    ann = join(browser, demo, "Ann", "alpha")
    bob = join(browser, demo, "Bob", "alpha")
    expect(ann.locator("#members li")).to_have_text(["Ann", "Bob"])

    # The page limits the input; a page that does not is answered with a validation error.
    ann.eval_on_selector("#text", "input => input.removeAttribute('maxlength')")
    say(ann, "x" * 1001)
    expect(ann.locator("#error")).to_contain_text("length <= 1000")
    expect(bob.locator("#messages li")).to_have_count(0)

    say(ann, "still here")
    expect(ann.locator("#error")).to_have_text("")
    for page in (ann, bob):
        expect(page.locator("#messages li .text")).to_have_text(["still here"])
        expect(page.locator("#messages li .from")).to_have_text(["Ann"])


def test_the_page_links_to_the_protocol_it_speaks(demo: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(demo)
    page.click("#protocol")
    page.wait_for_url("**/asyncapi")
    expect(page.locator("section.channel h2")).to_have_text(["/chat"])
    ops = page.locator("section.channel .op")
    expect(ops.nth(0)).to_contain_text("Say")
    for name in ("Said", "Presence", "Error", "RoomMessage", "RoomNotice", "PresenceEvent"):
        expect(page.locator(f"#schema-{name}")).to_have_count(1)
