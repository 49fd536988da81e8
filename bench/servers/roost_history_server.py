"""roost: two endpoints whose connections join room "all" and broadcast every message they
receive to it: /room keeps no history (bare payloads), /room-history keeps the last 100
messages (envelopes with positions), to measure what history costs per delivery.

    python roost_history_server.py PORT [REDIS_URL]
"""

import sys

from roost import RoomHistory, Roost

app = Roost(__file__, broker=sys.argv[2] if len(sys.argv) > 2 else None)


@app.websocket("/room", ping_interval=None, compression=False)
async def room(websocket):
    await websocket.join("all")
    while True:
        await websocket.broadcast(await websocket.receive_text(), room="all")


@app.websocket(
    "/room-history",
    ping_interval=None,
    compression=False,
    history=RoomHistory(size=100, ttl=600),
)
async def room_history(websocket):
    await websocket.join("all")
    while True:
        await websocket.broadcast(await websocket.receive_text(), room="all")


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(sys.argv[1]), log_level="WARNING")
