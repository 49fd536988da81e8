"""roost's chat demo: rooms, live presence, the last 50 messages per room, an SSE status feed.

Its WebSocket protocol is declared as typed messages (docs/typed-messages.md): the page sends
``Say``; the server sends ``History`` once joined, then ``Said`` and ``Presence`` as the room
changes, and an ``error`` message (``code``, ``message``, ``path``) for anything it cannot
take. The page at /asyncapi shows that protocol.

Run it with ``make demo`` (or ``python -m examples.chat.app``), then open
http://127.0.0.1:8080/ in two browser windows.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from pathlib import Path
from typing import Annotated

import msgspec

from roost import (
    MessageError,
    Request,
    Response,
    Roost,
    SSEMessage,
    SSEResponse,
    WebSocket,
    serve_html,
)

HERE = Path(__file__).parent
HISTORY = 50
MAX_TEXT = 1000
NAME_RE = re.compile(r"^[\w .'-]{1,32}$")
ROOM_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


# The protocol: every message is a JSON object whose "type" says which of these it is.
class Say(msgspec.Struct, tag="say", tag_field="type"):
    """Page to server: say ``text`` in the room."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class Said(msgspec.Struct, tag="said", tag_field="type"):
    """Server to page: ``sender`` said ``text`` at ``ts`` (Unix time, seconds)."""

    sender: str
    text: str
    ts: float


class History(msgspec.Struct, tag="history", tag_field="type"):
    """Server to page, once joined: the room's last messages, oldest first."""

    room: str
    messages: list[Said]


class Presence(msgspec.Struct, tag="presence", tag_field="type"):
    """Server to page: who is in the room now, by name."""

    members: list[str]


# openapi=True also serves the protocol below as an AsyncAPI document, on a page at /asyncapi.
app = Roost(__file__, openapi=True)
history: dict[str, deque[Said]] = {}
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


async def announce(room: str) -> None:
    members = sorted(names[cid] for cid in await app.connections("/chat", room) if cid in names)
    await app.broadcast("/chat", Presence(members=members), room)


@app.websocket("/chat", max_message_size=16 * 1024, max_invalid_messages=10)
async def chat(websocket: WebSocket, name: str, room: str = "lobby") -> None:
    """Runs once per connection; then roost dispatches its messages to the ``.on`` handlers."""
    name = name.strip()
    names[websocket.id] = name
    websocket.state.update(name=name, room=room)
    await websocket.join(room)
    past = history.setdefault(room, deque(maxlen=HISTORY))
    await websocket.send(History(room=room, messages=list(past)))
    await announce(room)


@chat.before_connect
def check_names(request: Request) -> Response | None:
    name = (request.query_params.get("name") or "").strip()
    room = request.query_params.get("room") or "lobby"
    if not NAME_RE.match(name):
        return Response(400, None, "name: 1 to 32 letters, digits, spaces, . ' -")
    if not ROOM_RE.match(room):
        return Response(400, None, "room: 1 to 32 letters, digits, _ or -")
    return None


@chat.on(Say)
async def say(websocket: WebSocket, msg: Say) -> None:
    text = msg.text.strip()
    if not text:
        raise MessageError("say something: the text is blank", code="blank")
    room = websocket.state["room"]
    said = Said(sender=websocket.state["name"], text=text, ts=time.time())
    history[room].append(said)
    await websocket.broadcast(said, room=room)


chat.sends(History, Said, Presence)


@chat.on_close
async def left(websocket: WebSocket, room: str = "lobby") -> None:
    names.pop(websocket.id, None)
    await announce(room)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
