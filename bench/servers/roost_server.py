"""roost: /echo echoes text; /fanout broadcasts every message to every connection;
/json-echo and /typed-echo echo a small JSON message ``{"type":"echo","text":...}`` after
decoding and checking it, by hand (``receive_text`` + orjson) and with typed messages.
GET /plaintext answers ``Hello, World!`` (text/plain), GET /json ``{"message": "Hello, World!"}``.

    python roost_server.py PORT [OPTION=VALUE ...]

OPTION=VALUE pairs are WebSocket endpoint options for both endpoints (Python literals, such as
``server_no_context_takeover=False`` or ``compression_mem_level=8``).
``ROOST_BENCH_METRICS=1`` serves the Prometheus endpoint at /metrics (to measure its cost).
``ROOST_BENCH_GC=0`` switches the garbage collector off once the server has started (to
measure what collection costs a handshake).
"""

import ast
import gc
import os
import sys

import msgspec
import orjson

from roost import Roost, ServerOptions

options = {"ping_interval": None}
for pair in sys.argv[2:]:
    name, _, value = pair.partition("=")
    options[name] = ast.literal_eval(value)

metrics = os.environ.get("ROOST_BENCH_METRICS") == "1"
app = Roost(__file__, server_options=ServerOptions(metrics_path="/metrics" if metrics else None))

if os.environ.get("ROOST_BENCH_GC") == "0":
    app.startup_handler(gc.disable)


@app.websocket("/echo", **options)
async def echo(websocket):
    while True:
        await websocket.send_text(await websocket.receive_text())


@app.websocket("/fanout", **options)
async def fanout(websocket):
    while True:
        await websocket.broadcast(await websocket.receive_text())


@app.websocket("/json-echo", **options)
async def json_echo(websocket):
    while True:
        message = orjson.loads(await websocket.receive_text())
        if message.get("type") != "echo" or not isinstance(message.get("text"), str):
            await websocket.send_text('{"type":"error"}')
            continue
        await websocket.send_text(orjson.dumps({"type": "echo", "text": message["text"]}).decode())


class Echo(msgspec.Struct, tag="echo", tag_field="type"):
    text: str


@app.websocket("/typed-echo", **options)
async def typed_echo(websocket):
    pass


@typed_echo.on(Echo)
async def echo_back(websocket, msg):
    await websocket.send(msg)


@app.get("/plaintext")
async def plaintext():
    return "Hello, World!"


@app.get("/json")
async def json():
    return {"message": "Hello, World!"}


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=int(sys.argv[1]), log_level="WARNING")
