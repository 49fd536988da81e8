"""An app for the scale-out and signal tests: each client learns its id and its worker's pid,
and can ask the app to broadcast, send_to, disconnect, join rooms and list connections.

A client of ``/linger`` holds a graceful shutdown open: its ``on_close`` never finishes, and
the shutdown waits for it up to ``shutdown_timeout`` (60 s here).
"""

import asyncio
import os

from roost import Roost, ServerOptions

app = Roost(__file__, server_options=ServerOptions(shutdown_timeout=60))


@app.websocket("/ws", ping_interval=None)
async def ws(websocket):  # type: ignore[no-untyped-def]
    await websocket.send_json({"id": websocket.id, "pid": os.getpid()})
    while True:
        cmd = await websocket.receive_json()
        op = cmd["op"]
        if op == "broadcast":
            await websocket.broadcast(cmd["text"], room=cmd.get("room"))
        elif op == "send_to":
            found = await websocket.send_to(cmd["id"], cmd["text"])
            await websocket.send_json({"sent": found})
        elif op == "join":
            await websocket.join(cmd["room"])
            await websocket.send_json({"rooms": sorted(websocket.rooms)})
        elif op == "connections":
            ids = await app.connections("/ws", cmd.get("room"))
            await websocket.send_json({"connections": sorted(ids)})
        elif op == "disconnect":
            await app.disconnect(cmd["id"], 4000, "kicked")
            await websocket.send_json({"disconnected": cmd["id"]})


@app.websocket("/linger", ping_interval=None)
async def linger(websocket):  # type: ignore[no-untyped-def]
    await websocket.send_json({"id": websocket.id, "pid": os.getpid()})
    while True:
        await websocket.receive()


@linger.on_close
async def linger_on_close(websocket):  # type: ignore[no-untyped-def]
    await asyncio.Event().wait()  # until the shutdown gives up on it


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return {"ok": True, "pid": os.getpid()}


@app.post("/announce")
async def announce(request):  # type: ignore[no-untyped-def]
    await app.broadcast("/ws", request.body.decode())
    return {"ok": True}


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
