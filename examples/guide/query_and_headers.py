"""Guide: query parameters and headers (/secure_chat and /api/stream)."""

from examples.guide.standins import authenticate_token, get_stream_data, validate_api_key
from roost import Robyn

app = Robyn(__file__)


@app.websocket("/secure_chat")
async def secure_chat(websocket):
    # Access query parameters
    token = websocket.query_params.get("token")
    room_id = websocket.query_params.get("room")

    if not token or not authenticate_token(token):
        await websocket.close()
        return

    await websocket.send_text(f"Joined room: {room_id}")

    while True:
        message = await websocket.receive_text()
        # Broadcast only to users in the same room
        await websocket.broadcast(f"Room {room_id} - {websocket.id}: {message}")


@app.websocket("/api/stream")
async def stream_handler(websocket):
    # Access headers
    user_agent = websocket.headers.get("User-Agent")
    api_key = websocket.headers.get("X-API-Key")

    if not validate_api_key(api_key):
        await websocket.close()
        return

    print(f"Client connected: {user_agent}")

    # Stream data based on client info
    while True:
        data = await get_stream_data()
        await websocket.send_json(data)


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
