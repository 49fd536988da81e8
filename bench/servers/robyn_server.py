"""Robyn 0.88: /echo echoes text; /fanout uses Robyn's broadcast(); GET /plaintext answers
``Hello, World!`` (text/plain), GET /json ``{"message": "Hello, World!"}``."""

import sys

from robyn import Robyn

app = Robyn(__file__)


@app.websocket("/echo")
async def echo(websocket):
    while True:
        await websocket.send_text(await websocket.receive_text())


@app.websocket("/fanout")
async def fanout(websocket):
    while True:
        await websocket.broadcast(await websocket.receive_text())


@app.get("/plaintext")
async def plaintext():
    return "Hello, World!"


@app.get("/json")
async def json():
    return {"message": "Hello, World!"}


if __name__ == "__main__":
    port = int(sys.argv[1])
    sys.argv = sys.argv[:1]  # Robyn parses the command line itself
    app.start(host="127.0.0.1", port=port)
