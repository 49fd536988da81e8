"""Guide: broadcasting messages (/notifications and /game)."""

import json

from roost import Robyn

app = Robyn(__file__)


@app.websocket("/notifications")
async def notification_handler(websocket):
    while True:
        message = await websocket.receive_text()
        # Broadcast to all connected clients
        await websocket.broadcast(f"Notification: {message}")
        # Confirm to sender
        await websocket.send_text("Notification sent!")


@app.websocket("/game")
async def game_handler(websocket):
    while True:
        action = await websocket.receive_json()

        if action["type"] == "move":
            # Broadcast player movement to all players
            await websocket.broadcast(
                json.dumps(
                    {
                        "type": "player_moved",
                        "player_id": websocket.id,
                        "position": action["position"],
                    }
                )
            )
        elif action["type"] == "chat":
            # Broadcast chat message
            await websocket.broadcast(
                json.dumps(
                    {
                        "type": "chat_message",
                        "player_id": websocket.id,
                        "message": action["message"],
                    }
                )
            )


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
