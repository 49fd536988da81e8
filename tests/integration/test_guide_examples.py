"""Every example of the WebSocket guide, run as its own process and driven by a real client.

Each test asserts what the guide promises for its example.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator, Callable

import pytest
import websockets
from examples.guide.standins import DEMO_API_KEY, DEMO_TOKEN

from tests.integration.guide_runner import Example

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
RECV_TIMEOUT = 5


async def recv(ws: websockets.ClientConnection) -> str:
    message = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    assert isinstance(message, str)
    return message


async def expect_closed(ws: websockets.ClientConnection) -> int | None:
    """Wait for the server to close ``ws``; return the close code."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    return ws.close_code


@pytest.fixture
async def example() -> AsyncIterator[Callable[[str], object]]:
    started: list[Example] = []

    async def start(name: str) -> Example:
        ex = Example(name)
        await ex.start()
        started.append(ex)
        return ex

    yield start
    for ex in started:
        ex.stop()


@pytest.mark.parametrize("name", ["echo", "echo_typed"])
async def test_echo_with_on_connect_and_on_close(example, name: str) -> None:  # type: ignore[no-untyped-def]
    ex = await example(name)
    async with websockets.connect(ex.url("/web_socket")) as ws:
        assert await recv(ws) == "Connected!"
        assert await recv(ws) == "Connection established"
        await ws.send("hello")
        reply = await recv(ws)
        assert re.fullmatch(rf"Echo from ({UUID}): hello", reply)
        conn_id = reply.split()[2].rstrip(":")
    assert ws.close_code == 1000
    assert ex.stop() == 0
    assert f"WebSocket {conn_id} disconnected" in ex.output


async def test_methods_chat_and_json(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("methods")
    async with (
        websockets.connect(ex.url("/chat")) as a,
        websockets.connect(ex.url("/chat")) as b,
    ):
        await a.send("hi all")
        assert await recv(a) == "You said: hi all"
        broadcast = await recv(a)
        assert re.fullmatch(rf"User {UUID}: hi all", broadcast)
        assert await recv(b) == broadcast  # every client gets the broadcast
    async with websockets.connect(ex.url("/api/ws")) as ws:
        await ws.send(json.dumps({"q": [1, 2]}))
        reply = json.loads(await recv(ws))
        assert re.fullmatch(UUID, reply["id"])
        assert reply["echo"] == {"q": [1, 2]}
        assert isinstance(reply["timestamp"], float)


async def test_dependency_injection_and_auth(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("dependency_injection")
    for query in ("", "?token=wrong"):
        async with websockets.connect(ex.url("/chat" + query)) as ws:
            assert await expect_closed(ws) == 1000
    async with websockets.connect(ex.url(f"/chat?token={DEMO_TOKEN}")) as ws:
        assert await recv(ws) == "Welcome to the chat!"
        assert await recv(ws) == "Connected"
        await ws.send("saved")
        assert re.fullmatch(rf"User {UUID}: saved", await recv(ws))


async def test_broadcasting_notifications_and_game(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("broadcasting")
    async with (
        websockets.connect(ex.url("/notifications")) as a,
        websockets.connect(ex.url("/notifications")) as b,
    ):
        await a.send("storm")
        assert await recv(a) == "Notification: storm"
        assert await recv(a) == "Notification sent!"
        assert await recv(b) == "Notification: storm"
    async with (
        websockets.connect(ex.url("/game")) as p1,
        websockets.connect(ex.url("/game")) as p2,
    ):
        await p1.send(json.dumps({"type": "move", "position": [3, 4]}))
        moved = json.loads(await recv(p2))
        assert moved["type"] == "player_moved" and moved["position"] == [3, 4]
        assert json.loads(await recv(p1)) == moved
        await p2.send(json.dumps({"type": "chat", "message": "gg"}))
        chat = json.loads(await recv(p1))
        assert chat == {"type": "chat_message", "player_id": chat["player_id"], "message": "gg"}
        assert json.loads(await recv(p2)) == chat


async def test_secure_chat_rejects_bad_or_missing_token(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("query_and_headers")
    for query in ("", "?room=r1", "?token=nope&room=r1"):
        async with websockets.connect(ex.url("/secure_chat" + query)) as ws:
            assert await expect_closed(ws) == 1000
    async with websockets.connect(ex.url(f"/secure_chat?token={DEMO_TOKEN}&room=r1")) as ws:
        assert await recv(ws) == "Joined room: r1"
        await ws.send("hello room")
        assert re.fullmatch(rf"Room r1 - {UUID}: hello room", await recv(ws))


async def test_api_stream_reads_the_api_key_header(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("query_and_headers")
    for headers in ({}, {"X-API-Key": "wrong"}):
        async with websockets.connect(ex.url("/api/stream"), additional_headers=headers) as ws:
            assert await expect_closed(ws) == 1000
    async with websockets.connect(
        ex.url("/api/stream"),
        additional_headers={"x-api-key": DEMO_API_KEY},
        user_agent_header="guide-test/1.0",
    ) as ws:
        first = json.loads(await recv(ws))
        second = json.loads(await recv(ws))
        assert second["seq"] == first["seq"] + 1
    assert ex.stop() == 0
    assert "Client connected: guide-test/1.0" in ex.output


async def test_admin_panel_commands(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("connection_management")
    async with (
        websockets.connect(ex.url("/admin_panel")) as admin,
        websockets.connect(ex.url("/admin_panel")) as other,
    ):
        await admin.send("status")
        assert await recv(admin) == "Command executed: status"
        await admin.send("kick_user:42")
        assert await recv(other) == "User 42 has been kicked"
        assert await recv(admin) == "User 42 has been kicked"
        await admin.send("shutdown")
        assert await recv(admin) == "Shutting down connection..."
        assert await expect_closed(admin) == 1000


async def test_limited_service_allows_five_per_ip(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("connection_management")
    url = ex.url("/limited_service")
    clients = [await websockets.connect(url) for _ in range(5)]
    for i, ws in enumerate(clients):
        await ws.send(f"job {i}")
        assert await recv(ws) == f"Processed: job {i}"
    async with websockets.connect(url) as sixth:
        assert await recv(sixth) == "Connection limit exceeded"
        assert await expect_closed(sixth) == 1000
    await clients.pop().close()
    # The handler's finally has run once the server saw the close; a new client then fits.
    for _ in range(50):
        async with websockets.connect(url) as again:
            await again.send("retry")
            reply = await recv(again)
            if reply == "Processed: retry":
                break
            assert reply == "Connection limit exceeded"
        await asyncio.sleep(0.05)
    else:
        pytest.fail("a slot was not freed after a client left")
    for ws in clients:
        await ws.close()


async def test_robust_chat_catches_websocket_disconnect(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("error_handling")
    async with websockets.connect(ex.url("/robust_chat")) as ws:
        await ws.send("ping")
        assert await recv(ws) == "Echo: ping"
    async with websockets.connect(ex.url("/monitored_service")) as ws:
        await ws.send("task")
        assert await recv(ws) == "Processed: task"
    assert ex.stop() == 0
    assert re.search(rf"Client {UUID} disconnected gracefully", ex.output)
    assert re.search(rf"Client {UUID} disconnected", ex.output)


async def test_sigterm_closes_clients_with_1001(example) -> None:  # type: ignore[no-untyped-def]
    ex = await example("echo")
    async with websockets.connect(ex.url("/web_socket")) as ws:
        assert await recv(ws) == "Connected!"
        assert await recv(ws) == "Connection established"
        ex.send(signal.SIGTERM)
        assert await expect_closed(ws) == 1001
    assert ex.stop() == 0  # waits for the shutdown the first SIGTERM started
    assert "disconnected" in ex.output
