"""roost: /echo echoes text; /fanout broadcasts every message to every connection."""

import sys

from roost import Roost

app = Roost(__file__)


@app.websocket("/echo", ping_interval=None)
async def echo(websocket):
    while True:
        await websocket.send_text(await websocket.receive_text())


@app.websocket("/fanout", ping_interval=None)
async def fanout(websocket):
    while True:
        await websocket.broadcast(await websocket.receive_text())


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(sys.argv[1]), log_level="WARNING")
