"""The least a Python WebSocket echo on uvloop can do per message, to measure what is left
above roost: /echo on any path, no checks beyond finding the key, no close handshake.

    python uvloop_echo_server.py PORT protocol   # data_received parses and writes each echo
    python uvloop_echo_server.py PORT task       # ... and a coroutine per connection sends it

*protocol* answers every frame from ``data_received`` (roost's compiled frame parser, one
``transport.write`` per message): one Python callback per read, as picows has in Cython.
*task* hands each message to a coroutine waiting on a future, as a handler written
``await ws.send_text(await ws.receive_text())`` needs, and writes from there.
"""

import asyncio
import base64
import hashlib
import sys

import uvloop

from roost.protocol.frames import encode_frame, parse_frame

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            digest = hashlib.sha1(value.strip() + GUID).digest()
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + base64.b64encode(digest)
                + b"\r\n\r\n"
            )
    raise ValueError("no key")


class Echo(asyncio.Protocol):
    def __init__(self, task: bool) -> None:
        self.task = task
        self.buf = b""
        self.open = False
        self.waiter: asyncio.Future[bytes] | None = None
        self.queue: list[bytes] = []

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.transport.write(accept(self.buf[:end]))
            self.open, data, self.buf = True, self.buf[end + 4 :], b""
            if self.task:
                asyncio.get_running_loop().create_task(self.handler())
        buf = self.buf + data if self.buf else data
        pos = 0
        while True:
            result = parse_frame(buf, pos, 1, 1 << 20)
            if not isinstance(result, tuple):
                break
            _, payload, pos = result
            if not self.task:
                self.transport.write(encode_frame(1, payload))
            elif self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(payload)
                self.waiter = None
            else:
                self.queue.append(payload)
        self.buf = buf[pos:]

    async def receive(self) -> bytes:
        if self.queue:
            return self.queue.pop(0)
        self.waiter = asyncio.get_running_loop().create_future()
        return await self.waiter

    async def handler(self) -> None:
        while True:
            self.transport.write(encode_frame(1, await self.receive()))


async def main(port: int, task: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Echo(task), "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2] == "task"))
