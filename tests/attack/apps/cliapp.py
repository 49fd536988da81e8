"""The README's app, for running the documented commands."""

import os

from roost import Roost, WebSocketDisconnect

app = Roost(__file__)


@app.websocket("/chat")
async def chat(websocket):
    try:
        while True:
            message = await websocket.receive_text()
            await websocket.broadcast(f"{websocket.id}: {message}")
    except WebSocketDisconnect:
        pass


@chat.on_connect
async def joined(websocket):
    return "Welcome!"


@app.get("/health")
def health():
    return {"ok": True, "pid": os.getpid()}


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
