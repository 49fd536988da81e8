"""Guide: error handling (/robust_chat and /monitored_service)."""

import asyncio
import logging

from roost import Robyn, WebSocketDisconnect

app = Robyn(__file__)
logging.basicConfig(level=logging.INFO)
app.inject_global(logger=logging.getLogger("monitored_service"))


@app.websocket("/robust_chat")
async def robust_chat(websocket):
    try:
        while True:
            message = await websocket.receive_text()
            await websocket.send_text(f"Echo: {message}")
    except WebSocketDisconnect:
        print(f"Client {websocket.id} disconnected gracefully")
    except Exception as e:
        print(f"Unexpected error for {websocket.id}: {e}")
        await websocket.close()


@app.websocket("/monitored_service")
async def monitored_service(websocket, global_dependencies=None):
    logger = global_dependencies.get("logger")

    try:
        while True:
            # Set timeout for receive
            try:
                message = await asyncio.wait_for(websocket.receive_text(), timeout=30.0)
                await websocket.send_text(f"Processed: {message}")
            except asyncio.TimeoutError:
                await websocket.send_text("Keep-alive ping")

    except WebSocketDisconnect:
        logger.info(f"Client {websocket.id} disconnected")
    except Exception as e:
        logger.error(f"Error in {websocket.id}: {e}")
        try:
            await websocket.send_text("Service error occurred")
            await websocket.close()
        except:
            pass  # Connection might already be closed


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
