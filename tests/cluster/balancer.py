"""A round-robin TCP balancer for the rolling-restart test, listening in the client namespace:
each accepted connection goes to the next node that accepts one, bytes copied both ways."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from tests.cluster.netns import socket_in
from tests.timing import seconds


class Balancer:
    def __init__(self, ns: str, host: str, port: int, backends: list[tuple[str, int]]) -> None:
        self.ns, self.host, self.port = ns, host, port
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = socket_in(self.ns)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        loop = asyncio.get_running_loop()
        for _ in self.backends:
            sock = socket_in(self.ns)
            try:
                await asyncio.wait_for(
                    loop.sock_connect(sock, self.backends[next(self._next)]), seconds(2)
                )
            except (OSError, TimeoutError):
                sock.close()
                continue
            return await asyncio.open_connection(sock=sock)
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = await self._backend()
        if backend is None:
            writer.close()
            return
        up = asyncio.create_task(_copy(reader, backend[1]))
        down = asyncio.create_task(_copy(backend[0], writer))
        self._pipes |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.wait({up, down}, timeout=seconds(5))
        for task in (up, down):
            task.cancel()
            self._pipes.discard(task)
        writer.close()
        backend[1].close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
