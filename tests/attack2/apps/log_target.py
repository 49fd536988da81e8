"""An app whose handlers fail on demand, and a WebSocket with a path parameter, for log tests."""

from __future__ import annotations

import logging

from roost import Request, Roost, WebSocketDisconnect

app = Roost(__file__)
log = logging.getLogger("app")


@app.get("/boom/:x")
def boom(request: Request):
    raise RuntimeError("boom")


@app.get("/ok/:x")
def ok(request: Request):
    return "ok"


@app.websocket("/room/:name")
async def room(websocket):
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
