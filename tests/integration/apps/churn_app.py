"""An app for the churn test and ``make soak``: an echo endpoint with rooms that closes, on
request, in each way a server closes a connection, and a route that counts the per-connection
objects alive in the process, garbage the collector has not freed yet included.

``CHURN_NO_GC=1`` turns the cycle collector off, so that the counts show what reference
counting alone frees. The keep-alive and close timers are long (60 s), so that whatever a
pending timer keeps alive after a close shows in the counts too. At shutdown the counts are
printed on stdout as ``live objects after shutdown: {json}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import zlib

import httptools

from roost import Roost
from roost.protocol.connection import WebSocketConnection
from roost.protocol.deflate import PerMessageDeflate
from roost.protocol.http import RequestParser
from roost.server.http import HttpConnection
from roost.server.options import ServerOptions
from roost.server.websocket import WebSocketChannel
from roost.session import Session
from roost.websocket import WebSocket

#: The objects each connection makes, by type: none may be left once it has closed.
PER_CONNECTION: dict[type, str] = {
    HttpConnection: "HttpConnection",
    RequestParser: "RequestParser",
    httptools.HttpRequestParser: "httptools.HttpRequestParser",
    WebSocketChannel: "WebSocketChannel",
    WebSocketConnection: "WebSocketConnection",
    Session: "Session",
    WebSocket: "WebSocket",
    PerMessageDeflate: "PerMessageDeflate",
}
# zlib's objects are not tracked by the collector: they are found among the referents.
ZLIB: dict[type, str] = {
    type(zlib.compressobj()): "zlib.Compress",
    type(zlib.decompressobj()): "zlib.Decompress",
}

app = Roost(__file__, server_options=ServerOptions(keep_alive_timeout=60))


def live_objects() -> dict[str, int]:
    """How many of each per-connection object exist in this process, unreachable ones not yet
    collected included (objects frozen at startup are not counted)."""
    counts = dict.fromkeys([*PER_CONNECTION.values(), *ZLIB.values()], 0)
    for obj in gc.get_objects():
        name = PER_CONNECTION.get(type(obj))
        if name is not None:
            counts[name] += 1
        for ref in gc.get_referents(obj):
            name = ZLIB.get(type(ref))
            if name is not None:
                counts[name] += 1
    return counts


async def converse(websocket) -> None:  # type: ignore[no-untyped-def]
    """Echo, until a command asks for something else: ``join ROOM`` answers ``joined``,
    ``room ROOM TEXT`` broadcasts TEXT to ROOM, ``bye`` returns (close 1000), ``kick`` has the
    app disconnect this connection (4000), ``boom`` raises (1011)."""
    while True:
        message = await websocket.receive_text()
        command, _, rest = message.partition(" ")
        if command == "join":
            await websocket.join(rest)
            await websocket.send_text("joined")
        elif command == "room":
            room, _, text = rest.partition(" ")
            await websocket.broadcast(text, room=room)
        elif command == "bye":
            return
        elif command == "kick":
            await app.disconnect(websocket.id, 4000, "kicked")
        elif command == "boom":
            raise RuntimeError("the handler failed on purpose")
        else:
            await websocket.send_text(message)


@app.websocket("/ws", close_timeout=60)
async def echo(websocket):  # type: ignore[no-untyped-def]
    await converse(websocket)


@echo.on_close
async def echo_closed(websocket):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)


# Short timers, for peers that stop answering: pings go unanswered, a close goes unanswered.
@app.websocket("/ws-silent", ping_interval=0.2, ping_timeout=0.2)
async def echo_silent(websocket):  # type: ignore[no-untyped-def]
    await converse(websocket)


@app.websocket("/ws-deaf", ping_interval=None, close_timeout=0.2)
async def echo_deaf(websocket):  # type: ignore[no-untyped-def]
    await converse(websocket)


@app.get("/hello")
async def hello() -> str:
    return "hello"


@app.get("/objects")
async def objects(request):  # type: ignore[no-untyped-def]
    """The live per-connection objects; ``?collect=1`` runs a full collection first."""
    if request.query_params.get("collect") == "1":
        gc.collect()
    server = app.server
    return {
        "objects": live_objects(),
        "open": len(server.channels) if server is not None else 0,
        "gc_enabled": gc.isenabled(),
    }


@app.startup_handler
def startup() -> None:
    if os.environ.get("CHURN_NO_GC") == "1":
        gc.disable()


@app.shutdown_handler
async def report() -> None:
    deadline = asyncio.get_running_loop().time() + 5
    counts = live_objects()
    while any(counts.values()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        counts = live_objects()
    print("live objects after shutdown:", json.dumps(counts), flush=True)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
