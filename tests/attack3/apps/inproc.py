"""Apps the single-process attack3 tests serve on the test's own loop (``serve`` fixture)."""

from __future__ import annotations

import json
from typing import Any

from roost import RoomHistory, Roost
from roost.hub.broker import MemoryBroker


class Name(str):
    """A str subclass, as markupsafe.Markup or an app's own string types are."""


def make_app(broker: MemoryBroker | None = None, size: int = 100) -> Roost:
    """``/a`` and ``/b``: endpoints with history and presence events whose handlers join the
    room named by ``?room=`` (``r``) with ``{"name": ...}`` from ``?name=`` and the replay of
    ``?replay=``, then obey text commands:

    - ``say:<text>``: broadcast to the room; ``others:<text>``: the same with exclude_self;
      ``all:<text>``: to the whole endpoint (bare); ``bytes:<hex>``: binary, to the room;
    - ``meta:<json>``: join room ``m`` with that metadata (answered ``{"ok"}`` or
      ``{"error"}``); ``leave:<room>`` / ``join:<room>`` (answered ``{"ok"}``);
    - ``who``: presence of the room; ``whoin:<room>``: of another room;
    - misuse, answered ``{"ok": cmd}`` or ``{"error"}``: ``joinint:<n>`` (join room
      ``int(n)``), ``replay:<json>`` (join room ``p`` with that replay), ``metasub:<name>``
      (join room ``m`` with ``{"name": Name(name)}``, a str subclass),
      ``sayin:<room>:<text>``, ``sayint:<n>:<text>`` (to room ``int(n)``).

    ``/events``: presence events, no history; ``say:`` goes to the room (bare)."""
    app = Roost(__file__, broker=broker)

    async def handler(websocket: Any, room: str, name: str, replay: int) -> None:
        await websocket.send_json({"id": websocket.id})
        await websocket.join(room, {"name": name} if name else None, replay=replay)
        while True:
            text = await websocket.receive_text()
            cmd, _, arg = text.partition(":")
            if cmd in ("say", "all"):
                try:  # roost refuses text that would pass for one of its own messages
                    await websocket.broadcast(arg, room=room if cmd == "say" else None)
                except ValueError as exc:
                    await websocket.send_json({"refused": str(exc)})
            elif cmd == "others":  # to the room, not to itself
                await websocket.broadcast(arg, room=room, exclude_self=True)
            elif cmd == "bytes":
                await websocket.broadcast(bytes.fromhex(arg), room=room)
            elif cmd == "meta":
                try:
                    await websocket.join("m", json.loads(arg))
                except (TypeError, ValueError) as exc:
                    await websocket.send_json({"error": f"{type(exc).__name__}: {exc}"})
                else:
                    await websocket.send_json({"ok": True})
            elif cmd == "leave":
                await websocket.leave(arg)
                await websocket.send_json({"ok": f"left {arg}"})
            elif cmd == "join":
                await websocket.join(arg)
                await websocket.send_json({"ok": f"joined {arg}"})
            elif cmd == "whoin":
                await websocket.send_json({"who": await websocket.presence(arg)})
            elif cmd in ("joinint", "replay", "metasub", "sayin", "sayint"):
                try:
                    if cmd == "joinint":  # a room that is not a str
                        await websocket.join(int(arg))
                    elif cmd == "replay":  # a replay count that is not an int
                        await websocket.join("p", replay=json.loads(arg))
                    elif cmd == "metasub":  # metadata holding a str subclass
                        await websocket.join("m", {"name": Name(arg)})
                    elif cmd == "sayint":  # sayint:<n>:<text>, to room int(n)
                        target, _, said = arg.partition(":")
                        await websocket.broadcast(said, room=int(target))
                    else:  # sayin:<room>:<text>
                        target, _, said = arg.partition(":")
                        await websocket.broadcast(said, room=target)
                except Exception as exc:
                    await websocket.send_json({"error": f"{type(exc).__name__}: {exc}"})
                else:
                    await websocket.send_json({"ok": cmd})
            elif cmd == "who":
                await websocket.send_json({"who": await websocket.presence(room)})

    for path in ("/a", "/b"):

        @app.websocket(
            path,
            history=RoomHistory(size=size, ttl=600),
            presence_events=True,
            ping_interval=None,
        )
        async def with_history(websocket, room: str = "r", name: str = "", replay: int = 0):  # type: ignore[no-untyped-def]
            await handler(websocket, room, name, replay)

    @app.websocket("/events", presence_events=True, ping_interval=None)
    async def events(websocket, room: str = "r", name: str = ""):  # type: ignore[no-untyped-def]
        await handler(websocket, room, name, 0)

    return app
