"""Guide: the same echo endpoint, with type annotations and WebSocketAdapter."""

from roost import Robyn, WebSocketAdapter

app = Robyn(__file__)


@app.websocket("/web_socket")
async def websocket_endpoint(websocket: WebSocketAdapter):
    # Connections are auto-accepted - ready to use immediately!
    try:
        while True:
            message: str = await websocket.receive_text()
            websocket_id: str = websocket.id
            await websocket.send_text(f"Echo from {websocket_id}: {message}")
    except Exception as e:
        print(f"WebSocket {websocket.id} error: {e}")


@websocket_endpoint.on_connect
async def on_connect(websocket: WebSocketAdapter) -> str:
    await websocket.send_text("Connected!")
    return "Connection established"


@websocket_endpoint.on_close
async def on_close(websocket: WebSocketAdapter) -> str:
    print(f"WebSocket {websocket.id} disconnected")
    return "Disconnected"


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
