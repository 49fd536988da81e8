"""roost's chat demo: rooms, live presence, the last 50 messages per room, an SSE status feed.

Run it with ``make demo`` (or ``python -m examples.chat.app``), then open
http://127.0.0.1:8080/ in two browser windows.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from roost import Request, Response, Roost, SSEMessage, SSEResponse, WebSocket, serve_html

HERE = Path(__file__).parent
HISTORY = 50
MAX_TEXT = 1000
NAME_RE = re.compile(r"^[\w .'-]{1,32}$")
ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

app = Roost(__file__)
history: dict[str, deque[dict[str, Any]]] = {}
names: dict[str, str] = {}


@app.get("/")
async def index(request: Request) -> Response:
    return await serve_html(HERE / "static" / "index.html", request=request)


app.serve_directory("/static", str(HERE / "static"))


@app.get("/status")
def status() -> SSEResponse:
    async def feed():  # type: ignore[no-untyped-def]
        while True:
            rooms = {}
            for room in sorted(history):
                members = await app.connections("/chat", room)
                rooms[room] = len(members)
            yield SSEMessage(
                {"connections": len(await app.connections("/chat")), "rooms": rooms},
                event="status",
            )
            await asyncio.sleep(2)

    return SSEResponse(feed(), keep_alive=10)


@app.websocket("/chat", max_message_size=16 * 1024)
async def chat(websocket: WebSocket, name: str, room: str = "lobby") -> None:
    while True:
        raw = await websocket.receive_text()
        try:
            message = orjson.loads(raw)
            text = message["text"]
            if message.get("type") != "message" or not isinstance(text, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            await websocket.send_json({"type": "error", "error": "send {type: message, text}"})
            continue
        text = text.strip()
        if not text:
            continue
        if len(text) > MAX_TEXT:
            await websocket.send_json({"type": "error", "error": "message too long"})
            continue
        entry = {"type": "message", "from": name, "text": text, "ts": time.time()}
        history.setdefault(room, deque(maxlen=HISTORY)).append(entry)
        await websocket.broadcast(orjson.dumps(entry).decode(), room=room)


@chat.before_connect
def check_names(request: Request) -> Response | None:
    name = (request.query_params.get("name") or "").strip()
    room = request.query_params.get("room") or "lobby"
    if not NAME_RE.match(name):
        return Response(400, None, "name: 1 to 32 letters, digits, spaces, . ' -")
    if not ROOM_RE.match(room):
        return Response(400, None, "room: 1 to 32 letters, digits, _ or -")
    return None


async def announce(room: str) -> None:
    members = sorted(names[cid] for cid in await app.connections("/chat", room) if cid in names)
    await app.broadcast(
        "/chat", orjson.dumps({"type": "presence", "members": members}).decode(), room
    )


@chat.on_connect
async def joined(websocket: WebSocket, name: str, room: str = "lobby") -> None:
    names[websocket.id] = name.strip()
    await websocket.join(room)
    past = list(history.setdefault(room, deque(maxlen=HISTORY)))
    await websocket.send_json({"type": "history", "room": room, "messages": past})
    await announce(room)


@chat.on_close
async def left(websocket: WebSocket, room: str = "lobby") -> None:
    names.pop(websocket.id, None)
    await announce(room)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
