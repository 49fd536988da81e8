"""Guide: WebSocket methods (send_text, broadcast, receive_json, send_json)."""

import time

from roost import Robyn

app = Robyn(__file__)


@app.websocket("/chat")
async def chat_handler(websocket):
    while True:
        message = await websocket.receive_text()
        websocket_id = websocket.id
        # Send to this client
        await websocket.send_text(f"You said: {message}")
        # Broadcast to all clients
        await websocket.broadcast(f"User {websocket_id}: {message}")


@app.websocket("/api/ws")
async def api_handler(websocket):
    while True:
        data = await websocket.receive_json()
        response = {"id": websocket.id, "echo": data, "timestamp": time.time()}
        await websocket.send_json(response)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
