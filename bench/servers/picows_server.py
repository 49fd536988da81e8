"""picows (raw): /echo echoes text; /fanout writes each message to every transport."""

import sys

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

subscribers: set[WSTransport] = set()


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            transport.send(WSMsgType.TEXT, frame.get_payload_as_memoryview())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class Fanout(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        subscribers.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        subscribers.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            for peer in subscribers:
                peer.send(WSMsgType.TEXT, payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def route(request: WSUpgradeRequest) -> WSListener | None:
    return Fanout() if request.path == b"/fanout" else Echo()


async def main() -> None:
    server = await ws_create_server(route, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
