"""The app the attack3 tests serve, in one process or under ``--processes N`` (through the
``roost`` command): a chat-like endpoint with history and presence events, whose clients
drive it with text commands, so that tests can make one worker do something while another
publishes.

``/room?room=r&name=..&replay=N&wait=1``: the connection first gets ``{"pid", "id"}``, then
joins ``room`` (unless ``wait=1``) with ``{"name": name}`` (when given). Commands (text):

- ``say:<text>``: broadcast ``text`` to the room;
- ``all:<text>``: broadcast ``text`` to the whole endpoint (no room, so bare);
- ``join:<room>`` / ``leave:<room>``: join or leave another room (answered ``{"ok": ...}``);
- ``block:<seconds>``: block this worker's event loop that long (a slow worker), then join;
- ``pump:<size>:<seconds>``: broadcast messages of ``size`` bytes to room ``r`` as fast as
  the relay confirms them, for ``seconds``; answered ``{"pumped": n, "failed": m}``;
- ``fill:<n>:<size>``: broadcast ``n`` messages of ``size`` bytes to room ``r``; answered
  ``{"filled": n}``;
- ``who``: answered ``{"who": presence of the room}``.

Settings from the environment: ``A3_SIZE`` (history size, 100), ``A3_PING`` (ping interval;
unset: roost's default), ``A3_EVENTS`` (presence events, 1).
"""

import asyncio
import os
import time

from roost import HistoryUnavailable, RoomHistory, Roost
from roost.responses import Response, plain

app = Roost(__file__)

_ping = os.environ.get("A3_PING")
_options = {} if _ping is None else {"ping_interval": None if _ping == "none" else float(_ping)}


@app.websocket(
    "/room",
    history=RoomHistory(size=int(os.environ.get("A3_SIZE", "100")), ttl=600),
    presence_events=os.environ.get("A3_EVENTS", "1") == "1",
    **_options,
)
async def room_ws(websocket, room: str = "r", name: str = "", replay: int = 0, wait: int = 0):  # type: ignore[no-untyped-def]
    await websocket.send_json({"pid": os.getpid(), "id": websocket.id})
    if not wait:
        await websocket.join(room, {"name": name} if name else None, replay=replay)
    while True:
        text = await websocket.receive_text()
        cmd, _, arg = text.partition(":")
        if cmd == "say":
            await websocket.broadcast(arg, room=room)
        elif cmd == "all":
            await websocket.broadcast(arg)
        elif cmd == "join":
            await websocket.join(arg)
            await websocket.send_json({"ok": f"joined {arg}"})
        elif cmd == "leave":
            await websocket.leave(arg)
            await websocket.send_json({"ok": f"left {arg}"})
        elif cmd == "block":
            time.sleep(float(arg))
            await websocket.join(room)
        elif cmd == "pump":
            size, _, seconds = arg.partition(":")
            body = "x" * int(size)
            deadline = time.monotonic() + float(seconds)
            pumped = failed = 0
            while time.monotonic() < deadline:
                try:
                    await app.broadcast("/room", f"{pumped}:{body}", "r")
                    pumped += 1
                except HistoryUnavailable:
                    failed += 1
                    await asyncio.sleep(0.01)
            await websocket.send_json({"pumped": pumped, "failed": failed})
        elif cmd == "fill":
            count, _, size = arg.partition(":")
            body = "y" * int(size)
            for i in range(int(count)):
                await app.broadcast("/room", f"{i}:{body}", "r")
            await websocket.send_json({"filled": int(count)})
        elif cmd == "who":
            await websocket.send_json({"who": await websocket.presence(room)})


@app.post("/publish")
async def publish(request) -> Response | dict[str, int]:  # type: ignore[no-untyped-def]
    room = request.query_params.get("room") or "r"
    try:
        await app.broadcast("/room", request.query_params.get("text") or "", room)
    except HistoryUnavailable as exc:
        return plain(503, f"history unavailable: {exc}")
    return {"pid": os.getpid()}


@app.get("/state")
async def state() -> dict[str, object]:
    """What this worker holds (for diagnosis): connections, held members, catch-ups."""
    hub = app.hub
    groups = [g for gs in hub._catching.values() for g in gs]
    return {
        "pid": os.getpid(),
        "connections": len(hub.registry),
        "held": sum(len(h) for h in hub.registry._held.values()),
        "catch_ups": len(groups),
        "buffered": sum(len(g.buffer or ()) for g in groups),
        "tasks": len(asyncio.all_tasks()),
    }


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}
