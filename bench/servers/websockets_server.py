"""websockets 17 (its asyncio server, permessage-deflate on as by default): /echo echoes text;
/fanout sends every message to every connection with websockets' broadcast()."""

import sys

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/fanout":
        subscribers.add(ws)
        try:
            async for message in ws:
                broadcast(subscribers, message)
        finally:
            subscribers.discard(ws)
        return
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), ping_interval=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
