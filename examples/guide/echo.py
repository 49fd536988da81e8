"""Guide: the first WebSocket example (auto-accepted connections, on_connect, on_close)."""

from roost import Robyn

app = Robyn(__file__)


@app.websocket("/web_socket")
async def websocket_endpoint(websocket):
    # Connections are auto-accepted in Robyn - no need to call accept()!
    try:
        while True:
            message = await websocket.receive_text()
            websocket_id = websocket.id
            await websocket.send_text(f"Echo from {websocket_id}: {message}")
    except Exception as e:
        print(f"WebSocket {websocket.id} error: {e}")


@websocket_endpoint.on_connect
async def on_connect(websocket):
    await websocket.send_text("Connected!")
    return "Connection established"


@websocket_endpoint.on_close
async def on_close(websocket):
    print(f"WebSocket {websocket.id} disconnected")
    return "Disconnected"


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
