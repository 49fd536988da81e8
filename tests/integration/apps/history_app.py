"""An app for the tests of rooms with history under ``--processes``: clients of ``/feed`` join
room r, which keeps history, after learning their worker's pid; ``POST /publish?text=...``
broadcasts to the room from whichever worker takes the request and answers with that
worker's pid, or 503 with the error when the history cannot be reached; ``GET /pid`` names
the worker; ``GET /presence`` lists room r's members with their metadata (clients that give
``?name=`` join with ``{"name": ...}``), and members get join and leave events."""

import os

from roost import HistoryUnavailable, RoomHistory, Roost
from roost.responses import Response, plain

app = Roost(__file__)


@app.websocket(
    "/feed", history=RoomHistory(size=1000, ttl=600), presence_events=True, ping_interval=None
)
async def feed(websocket):  # type: ignore[no-untyped-def]
    await websocket.send_json({"pid": os.getpid(), "id": websocket.id})
    name = websocket.query_params.get("name")
    await websocket.join("r", {"name": name} if name else None)
    while True:
        await websocket.receive_text()


@app.post("/publish")
async def publish(request) -> Response | dict[str, int]:  # type: ignore[no-untyped-def]
    try:
        await app.broadcast("/feed", request.query_params.get("text"), "r")
    except HistoryUnavailable as exc:
        return plain(503, f"history unavailable: {exc}")
    return {"pid": os.getpid()}


@app.get("/presence")
async def presence() -> dict[str, object]:
    return {"pid": os.getpid(), "members": await app.presence("/feed", "r")}


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}
