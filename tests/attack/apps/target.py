"""A small app with hooks, routers, WebSockets, streams and SSE: `python target.py --port N`."""

from __future__ import annotations

import asyncio
import os
import time

from roost import (
    Request,
    Response,
    Roost,
    ServerOptions,
    SSEMessage,
    SSEResponse,
    StreamingResponse,
    SubRouter,
    WebSocketDisconnect,
    serve_file,
)

HERE = os.path.dirname(os.path.abspath(__file__))
opts = {}
if os.environ.get("ATTACK_MAX_CONN"):
    opts["max_connections"] = int(os.environ["ATTACK_MAX_CONN"])
if os.environ.get("ATTACK_MAX_PER_IP"):
    opts["max_connections_per_ip"] = int(os.environ["ATTACK_MAX_PER_IP"])
if os.environ.get("ATTACK_HANDSHAKE_TIMEOUT"):
    opts["handshake_timeout"] = float(os.environ["ATTACK_HANDSHAKE_TIMEOUT"])
if os.environ.get("ATTACK_SHUTDOWN_TIMEOUT"):
    opts["shutdown_timeout"] = float(os.environ["ATTACK_SHUTDOWN_TIMEOUT"])

app = Roost(__file__, server_options=ServerOptions(**opts))


def deny(request):
    return Response(401, None, "denied")


# --- path-scoped hooks on the app ---
@app.get("/secret/:sid")
def secret(sid: str):
    return "secret " + sid


@app.post("/secret/:sid")
def secret_post(sid: str):
    return "posted secret " + sid


@app.get("/admin")
def admin():
    return "admin"


@app.get("/files/{rest:path}")
def files(rest: str):
    return "file " + rest


app.before_request("/secret/:sid")(deny)
app.before_request("/admin")(deny)
app.before_request("/files/{rest:path}")(deny)


# --- SubRouter with a router-wide hook ---
api = SubRouter(__file__, prefix="/api")


@api.get("/data")
def data():
    return "api data"


@api.post("/data")
def data_post():
    return "api data posted"


@api.get("/items/:iid")
def item(iid: str):
    return "item " + iid


@api.websocket("/ws")
async def api_ws(websocket):
    await websocket.send_text("api ws open")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


api.before_request()(deny)
app.include_router(api)

# nested
outer = SubRouter(__file__, prefix="/outer")
inner = SubRouter(__file__, prefix="/inner")


@inner.get("/x")
def inner_x():
    return "inner x"


@inner.websocket("/ws")
async def inner_ws(websocket):
    await websocket.send_text("inner ws open")


inner.before_request()(deny)
try:
    outer.include_router(inner)
    app.include_router(outer)
    NESTED = "ok"
except Exception as e:
    NESTED = repr(e)


@app.get("/nested")
def nested():
    return NESTED


# --- WebSocket with a path hook ---
@app.websocket("/chat/:room")
async def chat(websocket):
    await websocket.send_text("chat open")
    try:
        while True:
            msg = await websocket.receive_text()
            await websocket.send_text(msg)
    except WebSocketDisconnect:
        pass


app.before_request("/chat/:room")(deny)


@app.websocket("/open")
async def open_ws(websocket):
    try:
        while True:
            msg = await websocket.receive()
            await websocket.send(msg)
    except WebSocketDisconnect:
        pass


@app.websocket("/star", origins="*")
async def star_ws(websocket):
    await websocket.send_text("star")


@app.websocket("/listed", origins=["https://good.example"])
async def listed_ws(websocket):
    await websocket.send_text("listed")


gate = asyncio.Event()


@app.websocket("/slowgate")
async def slowgate(websocket):
    await websocket.send_text("in")
    try:
        while True:
            await websocket.receive()
    except WebSocketDisconnect:
        pass


@slowgate.before_connect
async def slowgate_bc(request):
    await asyncio.sleep(float(os.environ.get("ATTACK_BC_SLEEP", "1.0")))
    return None


@app.websocket("/flood")
async def flood(websocket):
    n = int(websocket.query_params.get("n", "1000"))
    size = int(websocket.query_params.get("size", "65536"))
    payload = "x" * size
    try:
        for _ in range(n):
            await websocket.send_text(payload)
    except WebSocketDisconnect:
        pass


@app.websocket("/bcast")
async def bcast(websocket):
    try:
        while True:
            await websocket.receive()
    except WebSocketDisconnect:
        pass


@app.get("/bcast_send")
async def bcast_send(n: int = 100, size: int = 65536):
    payload = "y" * size
    for _ in range(n):
        await app.broadcast("/bcast", payload)
    return "sent"


# --- HTTP ---
@app.get("/")
def root():
    return "root"


@app.get("/hello")
def hello():
    return "hello"


@app.post("/echo")
async def echo(request: Request):
    return Response(200, {"content-type": "application/octet-stream"}, request.body)


@app.get("/reflect")
def reflect(request: Request, v: str = ""):
    return Response(200, {"x-reflect": v}, "ok")


@app.get("/reflect_path/{rest:path}")
def reflect_path(request: Request, rest: str):
    return Response(200, {"x-path": request.path}, "ok")


@app.get("/stream")
async def stream(n: int = 3, size: int = 5):
    async def gen():
        for _ in range(n):
            yield b"s" * size

    return StreamingResponse(gen())


@app.get("/bigstream")
async def bigstream():
    async def gen():
        for _ in range(100000):
            yield b"B" * 65536

    return StreamingResponse(gen())


@app.get("/sse")
async def sse(n: int = 3, data: str = "d"):
    async def gen():
        for i in range(n):
            yield SSEMessage(data, event="e", id=str(i))

    return SSEResponse(gen())


@app.get("/sseflood")
async def sseflood():
    async def gen():
        for _ in range(100000):
            yield SSEMessage("z" * 60000)

    return SSEResponse(gen())


@app.get("/file")
async def file(request: Request):
    return await serve_file(os.path.join(HERE, "static", "a.txt"), request=request)


@app.get("/status204")
def s204():
    return Response(204, None, "")


@app.get("/boom")
def boom():
    raise RuntimeError("boom")


@app.get("/sleep")
def sleep_sync(t: float = 2.0):
    time.sleep(t)
    return "slept"


@app.post("/slowpost")
async def slowpost(request: Request, t: float = 2.0):
    await asyncio.sleep(t)
    return "done " + str(len(request.body))


@app.websocket("/blocking_connect")
async def blocking_connect(websocket):
    await websocket.send_text("bc")


@blocking_connect.on_connect
def bc_on_connect(websocket):
    time.sleep(3)
    return "connected"


@app.websocket("/slowrecv")
async def slowrecv(websocket):
    seen = 0
    nbytes = 0
    try:
        while True:
            msg = await websocket.receive()
            if msg == "done":
                await websocket.send_text(f"{seen} {nbytes}")
                continue
            seen += 1
            nbytes += len(msg)
            await asyncio.sleep(float(websocket.query_params.get("delay", "0.01")))
    except WebSocketDisconnect:
        pass


@app.websocket("/q1", max_queue=1)
async def q1(websocket):
    try:
        while True:
            await websocket.receive()
            await asyncio.sleep(30)
    except WebSocketDisconnect:
        pass


@app.get("/bcast_send_obj")
async def bcast_send_obj():
    await app.broadcast(bcast, "hello")
    return "sent"


@app.get("/pid")
def pid():
    return str(os.getpid())


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
