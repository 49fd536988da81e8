"""aiohttp: /echo echoes text; /fanout sends to every connection in a loop; GET /plaintext
answers ``Hello, World!`` (text/plain), GET /json ``{"message": "Hello, World!"}``."""

import sys

import uvloop
from aiohttp import WSMsgType, web

subscribers: set[web.WebSocketResponse] = set()


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def fanout(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None)
    await ws.prepare(request)
    subscribers.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                for peer in list(subscribers):
                    if not peer.closed:
                        await peer.send_str(msg.data)
    finally:
        subscribers.discard(ws)
    return ws


async def plaintext(request: web.Request) -> web.Response:
    return web.Response(text="Hello, World!")


async def json(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello, World!"})


app = web.Application()
app.add_routes(
    [
        web.get("/echo", echo),
        web.get("/fanout", fanout),
        web.get("/plaintext", plaintext),
        web.get("/json", json),
    ]
)

if __name__ == "__main__":
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
