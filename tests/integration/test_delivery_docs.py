"""docs/delivery.md is true: its app runs as shown, its envelope and notices are what a client
receives, its resume URL is what it says, and a client that resumes with it loses nothing."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from typing import Any

import websockets

from tests.history_client import ResumingClient
from tests.integration.guide_runner import ROOT
from tests.timing import seconds

DOC = (ROOT / "docs" / "delivery.md").read_text()


def doc_app() -> Any:
    (source,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    namespace: dict[str, Any] = {"__file__": str(ROOT / "docs" / "delivery_example.py")}
    exec(compile(source, "docs/delivery.md", "exec"), namespace)
    return namespace["app"]


async def recv_json(ws: websockets.ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))


async def test_the_documented_app_envelope_notices_and_resume(serve: Any) -> None:
    app = doc_app()
    (envelope_example,) = re.findall(r"```json\n(.*?)```", DOC, re.S)
    documented = json.loads(envelope_example)
    (resume_url,) = re.findall(r"```\n(ws://[^\n]+)\n```", DOC)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(resume_url).query)
    assert json.loads(query["roost_resume"][0]) == {"lobby": ["5c0f9e2a41d7b683", 12]}
    async with serve(app) as server:
        base = f"ws://127.0.0.1:{server.port}/chat?name=ann"
        async with websockets.connect(base) as ws:
            joined = await recv_json(ws)
            assert joined["roost"] == "joined" and joined["room"] == "lobby"
            await ws.send("hi")
            message = await recv_json(ws)
            assert set(message) == set(documented)
            assert (message["roost"], message["room"], message["data"]) == (
                "message",
                "lobby",
                "hi",
            )
            assert message["offset"] == 1
            for i in range(3):
                await ws.send(f"more {i}")
                await recv_json(ws)
            members = await app.presence("/chat", "lobby")
            assert list(members.values()) == [{"name": "ann"}]
        # A new client gets the last 50 (here: 4) messages; one that resumes, what follows.
        client = ResumingClient()
        await client.connect(base)

        async def until(n: int) -> None:
            while len(client.messages) < n:
                await client.recv()

        await asyncio.wait_for(until(4), seconds(5))
        assert client.notices[0]["replay"] == 4
        assert client.data("lobby") == ["hi", "more 0", "more 1", "more 2"]
        await client.close()
        async with websockets.connect(base) as ws:
            await recv_json(ws)
            await ws.send("while away")
        await client.connect(base)
        await asyncio.wait_for(until(5), seconds(5))
        assert client.notices[-1]["roost"] == "recovered"
        assert client.data("lobby")[-1] == "while away"
        await client.close()
