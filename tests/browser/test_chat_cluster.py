"""The chat demo killed and served by several processes, in headless Chromium: pages of a
one-process demo that is killed and started again come back, say what was lost and list the
members again; with ``--processes 2`` (two pages on different workers) and as two servers
sharing Redis (a page on each), the member lists and the room's history are the room's,
wherever each page is connected, and a page whose worker is killed comes back with every
message once."""

from __future__ import annotations

import os
import signal
from typing import Any

from tests.browser.servers import AppServer
from tests.browser.test_client import chromium, servers, wait_ms  # noqa: F401 (fixtures)
from tests.redis_server import RedisServer, needs_redis

DEMO = "examples.chat.app"


async def join(browser: Any, base: str, name: str, room: str) -> Any:
    """A page in a browser context of its own (no connection shared with another page) that
    has joined ``room`` as ``name``."""
    from playwright.async_api import expect

    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(wait_ms())
    await page.goto(base + "/")
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join-button")
    await expect(page.locator("#members li")).to_contain_text([name])
    return page


async def say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send-button")


async def members(page: Any, names: list[str]) -> None:
    from playwright.async_api import expect

    await expect(page.locator("#members li")).to_have_text(names, timeout=wait_ms())


async def messages(page: Any, texts: list[str]) -> None:
    from playwright.async_api import expect

    await expect(page.locator("#messages li .text")).to_have_text(texts, timeout=wait_ms())


async def chat_across(browser: Any, ann: Any, bob: Any, base: str) -> Any:
    """Ann and Bob, joined on different processes, chat; Cat joins late at ``base``: her
    page."""
    for page in (ann, bob):
        await members(page, ["Ann", "Bob"])
    await say(ann, "hello from Ann")
    await messages(bob, ["hello from Ann"])
    await say(bob, "hi Ann")
    for page in (ann, bob):
        await messages(page, ["hello from Ann", "hi Ann"])

    # A late joiner gets the room's history, whoever said what where.
    cat = await join(browser, base, "Cat", "alpha")
    await messages(cat, ["hello from Ann", "hi Ann"])
    for page in (ann, bob, cat):
        await members(page, ["Ann", "Bob", "Cat"])
    return cat


async def test_pages_come_back_after_a_restart_and_say_what_was_lost(
    chromium: Any,  # noqa: F811
    servers: list[AppServer],  # noqa: F811
) -> None:
    from playwright.async_api import expect

    server = await AppServer(DEMO).start()
    servers.append(server)
    ann = await join(chromium, server.url, "Ann", "alpha")
    bob = await join(chromium, server.url, "Bob", "alpha")
    await members(ann, ["Ann", "Bob"])
    await say(ann, "before")
    await messages(bob, ["before"])

    await server.kill()  # the room's history goes with the process
    await server.start()
    for page in (ann, bob):
        await expect(page.locator("#connection")).to_have_text(
            "reconnected: some messages were missed", timeout=wait_ms()
        )
        await expect(page.locator("#messages li.note")).to_have_text(
            ["(some messages were missed)"]
        )
        await members(page, ["Ann", "Bob"])
    await say(bob, "after")
    for page in (ann, bob):
        await messages(page, ["before", "after"])


async def test_two_workers_one_room(chromium: Any, servers: list[AppServer]) -> None:  # noqa: F811
    server = await AppServer(DEMO, "--processes", "2").start()
    servers.append(server)
    one, two = await server.each_worker_serving(2)

    # Each page connects while the other worker is paused, so only its own one accepts.
    async def on_worker(worker: int, other: int, name: str) -> Any:
        os.kill(other, signal.SIGSTOP)
        try:
            return await join(chromium, server.url, name, "alpha")
        finally:
            os.kill(other, signal.SIGCONT)

    ann = await on_worker(one, two, "Ann")
    bob = await on_worker(two, one, "Bob")
    cat = await chat_across(chromium, ann, bob, server.url)

    # Bob's worker dies: his page comes back (on a worker that is alive) with the room as it
    # was, each message once; the others see his old connection leave and his new one join.
    os.kill(two, signal.SIGKILL)
    await say(ann, "while Bob was away")
    await messages(bob, ["hello from Ann", "hi Ann", "while Bob was away"])
    for page in (ann, bob, cat):
        await members(page, ["Ann", "Bob", "Cat"])
    await say(cat, "welcome back")
    for page in (ann, bob, cat):
        await messages(page, ["hello from Ann", "hi Ann", "while Bob was away", "welcome back"])

    # Leaving is seen on every worker.
    await bob.context.close()
    await members(ann, ["Ann", "Cat"])
    await members(cat, ["Ann", "Cat"])


@needs_redis
async def test_two_servers_sharing_redis_one_room(
    chromium: Any,  # noqa: F811
    servers: list[AppServer],  # noqa: F811
    redis: RedisServer,
) -> None:
    one = await AppServer(DEMO, "--broker", redis.url).start()
    two = await AppServer(DEMO, "--broker", redis.url).start()
    servers += [one, two]
    ann = await join(chromium, one.url, "Ann", "alpha")
    bob = await join(chromium, two.url, "Bob", "alpha")
    cat = await chat_across(chromium, ann, bob, one.url)
    await bob.context.close()
    await members(ann, ["Ann", "Cat"])
    await members(cat, ["Ann", "Cat"])

    # The room's history is in Redis: a server started afresh serves it.
    await one.stop()
    three = await AppServer(DEMO, "--broker", redis.url).start()
    servers.append(three)
    dan = await join(chromium, three.url, "Dan", "alpha")
    await messages(dan, ["hello from Ann", "hi Ann"])
