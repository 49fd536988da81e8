"""The app each cluster-test node serves: a client of ``/ws`` learns its id and node, and can
broadcast and list connections; ``/stats`` shows what the node holds (open connections, its
broker's drop count, event-loop tasks, failures ``broadcast`` raised to a handler)."""

import asyncio
import os

from roost import Roost

app = Roost(__file__)
NODE = os.environ.get("ROOST_CLUSTER_NODE", "?")
open_ids: set[str] = set()
broadcast_errors: list[str] = []


@app.websocket("/ws", ping_interval=None)
async def ws(websocket):  # type: ignore[no-untyped-def]
    open_ids.add(websocket.id)
    try:
        await websocket.send_json({"id": websocket.id, "node": NODE})
        while True:
            cmd = await websocket.receive_json()
            if cmd["op"] == "broadcast":
                try:
                    await websocket.broadcast(cmd["text"])
                except Exception as exc:
                    broadcast_errors.append(repr(exc))
                    raise
            elif cmd["op"] == "connections":
                ids = await app.connections("/ws")
                await websocket.send_json({"connections": sorted(ids)})
    finally:
        open_ids.discard(websocket.id)


@app.get("/stats")
async def stats():  # type: ignore[no-untyped-def]
    broker = app.hub.broker
    return {
        "node": NODE,
        "open": len(open_ids),
        "dropped": getattr(broker, "dropped", 0),
        "tasks": len(asyncio.all_tasks()),
        "broadcast_errors": broadcast_errors,
    }
