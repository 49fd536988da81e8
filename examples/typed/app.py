"""Typed messages: a small chat whose protocol is declared as msgspec Structs.

docs/typed-messages.md shows this file piece by piece; tests/integration/test_typed.py runs it.
Run it with ``python -m examples.typed.app`` (port 8080, or ROOST_PORT).
"""

from __future__ import annotations

import os
from typing import Annotated

import msgspec

from roost import MessageError, Roost, WebSocket

app = Roost(__file__, openapi=True)


class Join(msgspec.Struct, tag="join", tag_field="type"):
    room: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class Send(msgspec.Struct, tag="send", tag_field="type"):
    room: str
    text: Annotated[str, msgspec.Meta(max_length=1000)]


class Said(msgspec.Struct, tag="said", tag_field="type"):
    room: str
    text: str
    sender: str


@app.websocket("/chat", max_invalid_messages=10)
async def chat(websocket: WebSocket) -> None:
    """Runs once per connection; when it returns, roost dispatches the typed messages."""
    await websocket.send({"type": "hello", "id": websocket.id})


@chat.on(Join)
async def join(websocket: WebSocket, msg: Join) -> list[str]:
    await websocket.join(msg.room)
    return sorted(websocket.rooms)


@chat.on(Send)
async def send(websocket: WebSocket, msg: Send) -> int:
    if msg.room not in websocket.rooms:
        raise MessageError(f"join {msg.room!r} first", code="not_joined")
    said = Said(room=msg.room, text=msg.text, sender=websocket.id)
    return await websocket.broadcast(said, room=msg.room)


chat.sends(Said)


if __name__ == "__main__":
    app.start(port=int(os.environ.get("ROOST_PORT", "8080")))
