"""roost's chat demo: rooms, live presence, the last 50 messages per room, an SSE status feed.

Its WebSocket protocol is declared as typed messages (docs/typed-messages.md): the page sends
``Say``; the server sends ``Presence`` once joined, ``Said`` for every message of the room,
and an ``error`` message (``code``, ``message``, ``path``) for anything it cannot take. The
page at /asyncapi shows that protocol.

The room's messages and its members are roost's, not the app's: the endpoint keeps each
room's history (a newcomer gets the last 50 messages; a page that reconnects gets what it
missed, once), members join with their name as metadata, and roost tells every member who
joins and leaves. So the demo runs the same in one process, with ``--processes 2`` and with
``--broker redis://...``. The page talks through roost's browser client, /roost/client.js
(docs/client.md), which reconnects and resumes by itself.

Run it with ``make demo`` (or ``python -m examples.chat.app``), then open
http://127.0.0.1:8080/ in two browser windows.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Annotated

import msgspec

from roost import (
    HistoryUnavailable,
    MessageError,
    Request,
    Response,
    RoomHistory,
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
    """Server to page, in the room's envelopes: ``sender`` said ``text`` at ``ts`` (Unix
    time, seconds)."""

    sender: str
    text: str
    ts: float


class Member(msgspec.Struct):
    """One connection in the room: its id (as in roost's join and leave events) and name."""

    id: str
    name: str


class Presence(msgspec.Struct, tag="presence", tag_field="type"):
    """Server to page, once joined: who is in the room, on every process and server; roost's
    join and leave events follow."""

    members: list[Member]


# openapi=True also serves the protocol below as an AsyncAPI document, on a page at /asyncapi.
app = Roost(__file__, openapi=True)


@app.get("/")
async def index(request: Request) -> Response:
    return await serve_html(HERE / "static" / "index.html", request=request)


app.serve_directory("/static", str(HERE / "static"))


@app.get("/status")
def status(room: str = "") -> SSEResponse:
    """Connections to the chat across every process and server, and in ``room``."""

    async def feed():  # type: ignore[no-untyped-def]
        while True:
            rooms = {room: len(await app.connections("/chat", room))} if room else {}
            yield SSEMessage(
                {"connections": len(await app.connections("/chat")), "rooms": rooms},
                event="status",
            )
            await asyncio.sleep(2)

    return SSEResponse(feed(), keep_alive=10)


@app.websocket(
    "/chat",
    max_message_size=16 * 1024,
    max_invalid_messages=10,
    history=RoomHistory(size=HISTORY, ttl=3600),
    presence_events=True,
)
async def chat(websocket: WebSocket, name: str, room: str = "lobby") -> None:
    """Runs once per connection; then roost dispatches its messages to the ``.on`` handlers."""
    name = name.strip()
    websocket.state.update(name=name, room=room)
    # The last 50 messages first (or, for a page that reconnects, what it missed).
    await websocket.join(room, {"name": name}, replay=HISTORY)
    members = await websocket.presence(room)
    here = [Member(id=cid, name=meta["name"]) for cid, meta in members.items() if meta]
    await websocket.send(Presence(members=here))


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
    try:
        await websocket.broadcast(said, room=room)  # kept in the room's history
    except HistoryUnavailable:
        raise MessageError("the room cannot be reached; try again", code="unavailable")


chat.sends(Said, Presence)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
