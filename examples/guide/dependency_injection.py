"""Guide: dependency injection with global_dependencies and router_dependencies."""

import logging

from examples.guide.standins import DatabaseConnection, JWTAuthService, MetricsCollector, RedisCache
from roost import Robyn

app = Robyn(__file__)

# Configure dependencies
app.inject_global(
    logger=logging.getLogger(__name__),
    database=DatabaseConnection(),
    metrics=MetricsCollector(),
)

app.inject(cache=RedisCache(), auth_service=JWTAuthService())


@app.websocket("/chat")
async def chat_handler(websocket, global_dependencies=None, router_dependencies=None):
    # Access injected dependencies
    logger = global_dependencies.get("logger")
    database = global_dependencies.get("database")
    cache = router_dependencies.get("cache")
    auth = router_dependencies.get("auth_service")

    logger.info(f"New chat connection: {websocket.id}")

    try:
        while True:
            message = await websocket.receive_text()

            # Use dependencies
            saved_msg = database.save_message(message, websocket.id)
            cache.invalidate(f"chat_history_{websocket.id}")

            await websocket.broadcast(f"User {websocket.id}: {message}")
    except Exception as e:
        logger.error(f"Chat error: {e}")


@chat_handler.on_connect
async def chat_connect(websocket, global_dependencies=None, router_dependencies=None):
    logger = global_dependencies.get("logger")
    auth = router_dependencies.get("auth_service")

    # Authenticate connection
    if not auth.verify_websocket_token(websocket.query_params.get("token")):
        await websocket.close()
        return "Unauthorized"

    logger.info(f"Authenticated connection: {websocket.id}")
    await websocket.send_text("Welcome to the chat!")
    return "Connected"


if __name__ == "__main__":
    app.start(host="127.0.0.1", port=8080)
