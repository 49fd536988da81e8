"""The echo server the Autobahn fuzzingclient tests: every message back, as received."""

from roost import Roost, WebSocketDisconnect

app = Roost(__file__)


@app.websocket("/", max_message_size=64 * 1024 * 1024, ping_interval=None, close_timeout=2)
async def echo(websocket):  # type: ignore[no-untyped-def]
    try:
        while True:
            message = await websocket.receive()
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=9001, log_level="WARNING")
