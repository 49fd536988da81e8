"""uvicorn + Starlette: /echo echoes text; /fanout sends to every connection in a loop;
GET /plaintext answers ``Hello, World!`` (text/plain), GET /json ``{"message": "Hello, World!"}``.

permessage-deflate is uvicorn's default: negotiated when a client offers it."""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

subscribers: set[WebSocket] = set()


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


async def fanout(websocket: WebSocket) -> None:
    await websocket.accept()
    subscribers.add(websocket)
    try:
        while True:
            message = await websocket.receive_text()
            for ws in list(subscribers):
                try:
                    await ws.send_text(message)
                except Exception:
                    subscribers.discard(ws)
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(websocket)


async def plaintext(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, World!")


async def json(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!"})


app = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/fanout", fanout),
        Route("/plaintext", plaintext),
        Route("/json", json),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        ws="websockets",
        log_level="warning",
        ws_ping_interval=None,
        ws_per_message_deflate=True,  # uvicorn's default: negotiated when a client offers it
    )
