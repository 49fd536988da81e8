"""Guide: connection management (/admin_panel and the per-IP limit of /limited_service)."""

from roost import Robyn

app = Robyn(__file__)


@app.websocket("/admin_panel")
async def admin_handler(websocket):
    while True:
        command = await websocket.receive_text()

        if command == "shutdown":
            await websocket.send_text("Shutting down connection...")
            await websocket.close()
            break
        elif command.startswith("kick_user"):
            user_id = command.split(":")[1]
            await websocket.broadcast(f"User {user_id} has been kicked")
            # Close specific user's connection (implementation depends on your user tracking)
        else:
            await websocket.send_text(f"Command executed: {command}")


connection_counts = {}


@app.websocket("/limited_service")
async def limited_handler(websocket):
    client_ip = websocket.client.get("ip", "unknown")

    # Check connection limit
    if connection_counts.get(client_ip, 0) >= 5:
        await websocket.send_text("Connection limit exceeded")
        await websocket.close()
        return

    connection_counts[client_ip] = connection_counts.get(client_ip, 0) + 1

    try:
        while True:
            message = await websocket.receive_text()
            await websocket.send_text(f"Processed: {message}")
    finally:
        # Clean up on disconnect
        connection_counts[client_ip] -= 1


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
