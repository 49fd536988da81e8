"""roost's browser client (/roost/client.js) in headless Chromium, against
tests/browser/apps/feed_app.py: what it does with envelopes, notices and close codes, and a
page that lists a room's messages while the server is killed (SIGKILL) and started again.

Where the room's history survives (a killed worker of ``--processes 2``, a killed server
sharing Redis), the page shows every message exactly once, in order; where it does not (one
process, the whole ``--processes 2`` server), the page shows "not recovered"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.browser.servers import AppServer
from tests.browser.test_chat import CHROMIUM
from tests.integration.guide_runner import ROOT, free_port
from tests.redis_server import RedisServer, needs_redis
from tests.timing import seconds

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is needed")

FEED = "tests.browser.apps.feed_app"


def wait_ms(timeout: float = 20) -> float:
    return seconds(timeout) * 1000


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def servers() -> AsyncIterator[list[AppServer]]:
    """Servers a test starts, stopped afterwards whatever happened."""
    started: list[AppServer] = []
    try:
        yield started
    finally:
        for server in started:
            await server.stop()


async def open_page(chromium: Any, server: AppServer, path: str = "/feed") -> Any:
    """A page of the app whose RoostSocket has joined room r of ``path``."""
    page = await chromium.new_page()
    page.set_default_timeout(wait_ms())
    await page.goto(server.url + "/")
    await page.evaluate("(path) => window.start(path)", path)
    await until(page, "window.seen.events.some((e) => e.roost === 'joined')")
    return page


async def until(page: Any, condition: str, arg: Any = None, timeout: float = 20) -> None:
    """Wait until the JavaScript expression ``condition`` (of ``arg``) holds in the page."""
    await page.wait_for_function(f"(arg) => {condition}", arg=arg, timeout=wait_ms(timeout))


async def shown(page: Any) -> list[str]:
    """The room messages the page lists, in order."""
    texts = await page.eval_on_selector_all("#messages li", "els => els.map(e => e.textContent)")
    return list(texts)


async def states(page: Any) -> list[str]:
    return [s for s, _ in await page.evaluate("window.seen.states")]


async def page_pid(page: Any) -> int:
    """The process that serves the page's current connection (it says so first)."""
    bare = await page.evaluate("window.seen.bare")
    return int(json.loads(bare[-1])["pid"])


class Publisher:
    """Publishes "0", "1", ... to room r through /publish, one at a time, each once the
    previous one is sequenced, until ``stop()`` (or its server goes away)."""

    def __init__(self, ws: websockets.ClientConnection, pid: int) -> None:
        self.ws = ws
        self.pid = pid
        self.sent: list[str] = []  # sent, whether or not sequenced
        self.acked: list[str] = []  # sequenced: every client of the room gets these
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, server: AppServer, avoid: int | None = None) -> Publisher:
        """A publisher on a process other than ``avoid`` (connections opened at the same
        time wake every worker, so one of ten lands elsewhere)."""
        for _ in range(10):
            opened = await asyncio.gather(
                *(websockets.connect(f"ws://127.0.0.1:{server.port}/publish") for _ in range(10))
            )
            chosen = None
            for ws in opened:
                pid = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))["pid"]
                if chosen is None and pid != avoid:
                    chosen = cls(ws, pid)
                else:
                    await ws.close()
            if chosen is not None:
                return chosen
        raise AssertionError(f"every publisher landed on process {avoid}")

    async def publish(self, text: str) -> None:
        self.sent.append(text)
        await self.ws.send(text)
        reply = await asyncio.wait_for(self.ws.recv(), seconds(10))
        assert reply == f"ok {text}", reply
        self.acked.append(text)

    def start(self) -> None:
        async def run() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while not self._stop.is_set() and len(self.sent) < 50_000:
                    await self.publish(str(len(self.sent)))

        self._task = asyncio.create_task(run())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, seconds(10))
        await self.ws.close()


async def flowing_then(page: Any, publisher: Publisher, count: int) -> None:
    """Wait until the page shows ``count`` more messages, with the publisher still going."""
    already = len(await page.evaluate("window.seen.messages"))
    await until(page, "window.seen.messages.length >= arg", already + count)
    assert publisher.running, "the publisher stopped"


async def kill_and_resume(
    page: Any, publisher: Publisher, kill: Any, restart: Any = None
) -> tuple[list[Any], list[Any]]:
    """Kill a server process while messages flow to the page, start it again if it must be,
    let the page reconnect and messages flow again; then the states and notices the page
    saw after the kill."""
    await flowing_then(page, publisher, 50)
    mark = len(await page.evaluate("window.seen.states"))
    events = len(await page.evaluate("window.seen.events"))
    await kill()
    await until(page, "window.seen.states.slice(arg).some(([s]) => s === 'connecting')", mark)
    if restart is not None:
        await restart()
    await until(
        page,
        "window.seen.events.slice(arg).some((e) => e.roost.endsWith('recovered'))",
        events,
    )
    await until(page, "['open', 'not_recovered'].includes(window.sock.state)")
    after = (await page.evaluate("window.seen.events"))[events:]
    # Presence events may come too: the page's own connection leaving, from the killed worker.
    notices = [e for e in after if e["roost"] in ("joined", "recovered", "not_recovered")]
    return (await page.evaluate("window.seen.states"))[mark:], notices


async def the_end(page: Any, server: AppServer) -> list[str]:
    """Publish "end" and, once the page shows it (so that everything published before has
    arrived), what the page shows."""
    last = await Publisher.connect(server)
    await last.publish("end")
    await last.ws.close()
    await until(page, "window.seen.messages.some((m) => m[3] === 'end')")
    return await shown(page)


def assert_exactly_once_in_order(got: list[str], acked: list[str]) -> None:
    want = [*acked, "end"]
    if got != want:
        dups = sorted({x for x in got if got.count(x) > 1})[:10]
        missing = [x for x in want if x not in got][:10]
        raise AssertionError(f"{len(got)} shown, {len(want)} sent; dups {dups}; missing {missing}")


# -- docs/client.md ---------------------------------------------------------------------------


async def test_the_documented_page_lists_the_room_and_resumes(chromium: Any, serve: Any) -> None:
    doc = (ROOT / "docs" / "client.md").read_text()
    (python,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    (page_html,) = re.findall(r"```html\n(.*?)```", doc, re.S)
    namespace: dict[str, Any] = {"__file__": str(ROOT / "docs" / "client_example.py")}
    exec(compile(python, "docs/client.md", "exec"), namespace)
    namespace["PAGE"] = page_html
    app = namespace["app"]
    async with serve(app) as server:
        for i in range(25):
            await app.broadcast("/feed", f"early {i}", "news")  # kept, nobody there yet
        page = await chromium.new_page()
        page.set_default_timeout(wait_ms())
        await page.goto(f"http://127.0.0.1:{server.port}/")
        # The app's replay=20: the last 20 first.
        await page.wait_for_function("document.getElementById('state').textContent === 'open'")
        await page.wait_for_function("document.querySelectorAll('#messages li').length === 20")
        (conn,) = await app.connections("/feed", "news")
        await app.disconnect(conn, 1012, "restarting")
        await page.wait_for_function(
            "document.getElementById('state').textContent === 'connecting'"
        )
        for i in range(5):
            await app.broadcast("/feed", f"while away {i}", "news")
        await page.wait_for_function("document.getElementById('state').textContent === 'open'")
        await page.evaluate("sock.send('back')")
        await page.wait_for_function(
            "[...document.querySelectorAll('#messages li')].some((li) => li.textContent === 'back')"
        )
        assert await shown(page) == [
            *(f"early {i}" for i in range(5, 25)),
            *(f"while away {i}" for i in range(5)),
            "back",
        ]


# -- the client's rules, on crafted messages ---------------------------------------------------


async def test_duplicates_and_stale_envelopes_are_dropped_and_the_rest_passed_on(
    chromium: Any, servers: list[AppServer]
) -> None:
    server = await AppServer(FEED).start()
    servers.append(server)
    page = await open_page(chromium, server, "/crafted")
    await until(page, "window.seen.bare.includes(JSON.stringify({done: true}))")
    seen = await page.evaluate("window.seen")
    assert seen["messages"] == [
        ["r", "e1", 1, "a"],
        ["r", "e1", 2, "b"],
        ["r", "e2", 5, "c"],
        ["r", "e2", 6, "bytes:0,255"],
        ["s", "e1", 1, "other room"],
    ]
    assert seen["bare"] == ["bare text", "bytes:1,2", '{"done":true}']
    assert [e["roost"] for e in seen["events"]] == ["joined", "join", "not_recovered"]
    assert seen["events"][1]["meta"] == {"name": "x"}
    assert [s for s, _ in seen["states"]] == ["connecting", "open", "not_recovered"]
    assert seen["states"][2][1] == {"room": "r", "reason": "epoch"}
    assert await page.evaluate("window.sock.dropped") == 3
    positions = await page.evaluate("[...window.sock.positions]")
    assert positions == [["r", ["e2", 6]], ["s", ["e1", 1]]]
    assert await page.text_content("#state") == "not recovered (r: epoch)"


@pytest.mark.parametrize(
    ("code", "reason", "final"),
    [
        (1000, "", True),
        (1003, "", True),
        (1008, "too many invalid messages", True),
        (4001, "kicked", True),
        (1008, "slow consumer: outbound buffer over its limit", False),
        (1011, "", False),
        (1012, "", False),
        (1013, "", False),
        (3000, "", False),
    ],
)
async def test_which_close_codes_end_the_session(
    chromium: Any, servers: list[AppServer], code: int, reason: str, final: bool
) -> None:
    if not servers:
        servers.append(await AppServer(FEED).start())
    page = await chromium.new_page()
    page.set_default_timeout(wait_ms())
    await page.goto(servers[0].url + "/")
    path = f"/close?code={code}&reason={urllib.parse.quote(reason)}"
    await page.evaluate("(path) => window.start(path, {maxRetries: 1})", path)
    # A final code: closed at once. Any other: one more attempt (maxRetries: 1), then closed.
    await until(page, "window.sock.state === 'closed'")
    seen = [s for s, _ in await page.evaluate("window.seen.states")]
    detail = (await page.evaluate("window.seen.states"))[-1][1]
    if final:
        assert seen == ["connecting", "open", "closed"]
        assert detail == {"code": code, "reason": reason}
    else:
        assert seen == ["connecting", "open", "connecting", "open", "closed"]
        assert detail == {"code": code, "reason": reason, "gaveUp": True}


async def test_retry_delays_grow_with_full_jitter_up_to_the_cap(
    chromium: Any, servers: list[AppServer]
) -> None:
    server = await AppServer(FEED).start()
    servers.append(server)
    page = await chromium.new_page()
    await page.goto(server.url + "/")
    delays = await page.evaluate(
        """() => [0, 1, 2, 3, 4, 10, 40].map((attempt) => {
             const all = Array.from(
               {length: 2000}, () => RoostSocket.retryDelay(attempt, 100, 3000));
             return [Math.min(...all), Math.max(...all)];
           })"""
    )
    caps = [100, 200, 400, 800, 1600, 3000, 3000]
    for (low, high), cap in zip(delays, caps, strict=True):
        assert 0 <= low < cap * 0.1, (low, cap)  # jitter: down to nearly nothing...
        assert cap * 0.9 < high <= cap, (high, cap)  # ...and up to the cap, never past it
    # A server that is not there: the page keeps trying, each attempt reported.
    await page.evaluate("(url) => window.start(url)", f"ws://127.0.0.1:{free_port()}/feed")
    await until(page, "window.seen.states.filter(([s]) => s === 'connecting').length >= 4")
    attempts = [d["attempt"] for s, d in await page.evaluate("window.seen.states")]
    assert attempts[:4] == [0, 1, 2, 3]
    await page.evaluate("window.sock.close()")
    assert await page.evaluate("window.sock.state") == "closed"


# -- killed servers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param((), id="one-process"),
        pytest.param(("--processes", "2"), id="processes-2"),
    ],
)
async def test_a_restart_that_loses_the_history_shows_not_recovered(
    chromium: Any, servers: list[AppServer], flags: tuple[str, ...]
) -> None:
    server = await AppServer(FEED, *flags).start()
    servers.append(server)
    page = await open_page(chromium, server)
    publisher = await Publisher.connect(server)
    publisher.start()

    async def kill() -> None:
        await server.kill()

    after_kill, notices = await kill_and_resume(page, publisher, kill, server.start)
    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
        await publisher.stop()
    assert [n["roost"] for n in notices] == ["not_recovered"]
    assert notices[0]["reason"] == "epoch"
    assert [s for s, _ in after_kill][-2:] == ["recovering", "not_recovered"]
    assert await page.text_content("#state") == "not recovered (r: epoch)"

    # What the page showed before is what was published, in order, each once; what is
    # published now follows, each once.
    before = await shown(page)
    assert before == publisher.sent[: len(before)]
    for i in range(20):
        after = await Publisher.connect(server)
        await after.publish(f"after {i}")
        await after.ws.close()
    end = await the_end(page, server)
    assert end == [*before, *(f"after {i}" for i in range(20)), "end"]


async def test_a_killed_worker_loses_nothing(chromium: Any, servers: list[AppServer]) -> None:
    server = await AppServer(FEED, "--processes", "2").start()
    servers.append(server)
    page = await open_page(chromium, server)
    first = await page_pid(page)
    publisher = await Publisher.connect(server, avoid=first)
    publisher.start()

    async def kill() -> None:
        os.kill(first, signal.SIGKILL)

    after_kill, notices = await kill_and_resume(page, publisher, kill)
    assert [n["roost"] for n in notices] == ["recovered"]
    assert [s for s, _ in after_kill][-2:] == ["recovering", "open"]
    await flowing_then(page, publisher, 50)
    await publisher.stop()
    got = await the_end(page, server)
    assert_exactly_once_in_order(got, publisher.acked)
    assert await page.evaluate("window.sock.dropped") == 0  # roost sent none twice


@needs_redis
async def test_a_killed_server_sharing_redis_loses_nothing(
    chromium: Any, servers: list[AppServer], redis: RedisServer
) -> None:
    one = await AppServer(FEED, "--broker", redis.url).start()
    two = await AppServer(FEED, "--broker", redis.url).start()
    servers += [one, two]
    page = await open_page(chromium, one)
    publisher = await Publisher.connect(two)
    publisher.start()
    after_kill, notices = await kill_and_resume(page, publisher, one.kill, one.start)
    assert [n["roost"] for n in notices] == ["recovered"]
    assert [s for s, _ in after_kill][-2:] == ["recovering", "open"]
    await flowing_then(page, publisher, 50)
    await publisher.stop()
    got = await the_end(page, two)
    assert_exactly_once_in_order(got, publisher.acked)
    assert await page.evaluate("window.sock.dropped") == 0
