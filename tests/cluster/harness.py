"""Processes and clients of a cluster test: Redis and roost nodes started inside their
namespaces (``ip netns exec``), and WebSocket clients whose sockets live in the client
namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import websockets
from websockets.exceptions import ConnectionClosed

from tests.cluster.netns import Network, socket_in
from tests.timing import POLL_INTERVAL, eventually, seconds

ROOT = Path(__file__).resolve().parents[2]
REDIS = shutil.which("redis-server")
PORT = 8000
REDIS_PORT = 6379
#: Seconds a dead node's presence may outlive it (the brokers' ``presence_ttl``).
PRESENCE_TTL = 3


async def accepts(ns: str, host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port, seen from namespace ns."""
    sock = socket_in(ns)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (host, port)), seconds(2)
        )
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()
    return True


async def http_get(ns: str, host: str, port: int, path: str) -> dict[str, object]:
    """GET ``path`` from namespace ``ns``; the JSON body."""
    sock = socket_in(ns)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), seconds(5))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), seconds(5))
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return dict(json.loads(body))


class Redis:
    """redis-server in namespace ``redis`` at 10.77.0.1, without persistence."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.ns = net.host("redis", b=1)
        self.host = net.address("redis", "b")
        self.dir = tempfile.mkdtemp(prefix="roost-cluster-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{REDIS_PORT}/0?presence_ttl={PRESENCE_TTL}"

    async def start(self) -> None:
        assert REDIS is not None
        with open(f"{self.dir}/redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, REDIS, "--port", str(REDIS_PORT), "--bind",
                 self.host, "--protected-mode", "no", "--save", "", "--appendonly", "no",
                 "--dir", self.dir],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        await eventually(self._answers, 10, "redis-server answering PING")

    async def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
        sock = socket_in(self.ns)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (self.host, REDIS_PORT)), seconds(2))
            await loop.sock_sendall(sock, b"PING\r\n")
            return (await asyncio.wait_for(loop.sock_recv(sock, 64), seconds(2))) == b"+PONG\r\n"
        except (OSError, TimeoutError):
            return False
        finally:
            sock.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """``python -m roost tests.cluster.apps.node:app`` in namespace ``n<i>``, serving at
    10.77.1.1<i> (front) and reaching Redis from 10.77.0.1<i> (back). Each start has its own
    stderr, kept for ``log()``."""

    def __init__(self, net: Network, index: int, redis: Redis) -> None:
        self.net = net
        self.name = f"n{index}"
        self.ns = net.host(self.name, f=10 + index, b=10 + index)
        self.host = net.address(self.name, "f")
        self.redis = redis
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (kept for log())

    async def start(self) -> None:
        self.starts += 1
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "roost",
             "tests.cluster.apps.node:app", "--host", self.host, "--port", str(PORT),
             "--broker", self.redis.url, "--log-level", "INFO"],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ROOST_CLUSTER_NODE": self.name},
            stdout=subprocess.DEVNULL, stderr=self._stderr,
        )  # fmt: skip
        await eventually(self._listening, 20, f"{self.name} listening")

    async def _listening(self) -> bool:
        assert self.alive(), f"{self.name} exited: {self.log()}"
        return await accepts(self.net.ns("client"), self.host, PORT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def count(self, text: str) -> int:
        """Lines of this start's log that contain ``text``."""
        return sum(text in line for line in self.log().splitlines())

    def rss(self) -> int:
        """Resident memory of the node process, in bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    async def stats(self) -> dict[str, object]:
        return await http_get(self.net.ns("client"), self.host, PORT, "/stats")

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM (a graceful shutdown: clients are closed with 1001); the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, seconds(30))


class Client:
    """One WebSocket client in the client namespace. Broadcast texts land in ``inbox``,
    JSON replies in ``replies``; ``close_code`` is set when the connection ends."""

    def __init__(self, ws: websockets.ClientConnection, hello: dict[str, str]) -> None:
        self.ws = ws
        self.id = hello["id"]
        self.node = hello["node"]
        self.inbox: list[str] = []
        self.replies: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, net: Network, host: str, port: int = PORT) -> Client:
        sock = socket_in(net.ns("client"))
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)),
                               seconds(5))  # fmt: skip
        ws = await websockets.connect(
            f"ws://{host}:{port}/ws", sock=sock, open_timeout=seconds(10), ping_interval=None
        )
        hello = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
        return cls(ws, hello)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                assert isinstance(message, str)
                if message.startswith("{"):
                    self.replies.put_nowait(json.loads(message))
                else:
                    self.inbox.append(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code if self.ws.close_code is not None else 1006
            self.closed.set()

    async def broadcast(self, text: str) -> None:
        await self.ws.send(json.dumps({"op": "broadcast", "text": text}))

    async def connections(self) -> set[str]:
        """The ids the node lists across the cluster."""
        await self.ws.send(json.dumps({"op": "connections"}))
        while True:
            reply = await asyncio.wait_for(self.replies.get(), seconds(10))
            if "connections" in reply:
                return set(reply["connections"])  # type: ignore[call-overload]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), seconds(5))
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


async def delivered(sender: Client, receiver: Client, tag: str, timeout: float = 20) -> int:
    """Broadcast ``tag-<i>`` from ``sender`` until ``receiver`` gets one (at-most-once
    delivery may drop the first ones); how many were sent."""
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(timeout)
    while True:
        await sender.broadcast(f"{tag}-{sent}")
        sent += 1
        for _ in range(20):
            if any(m.startswith(f"{tag}-") for m in receiver.inbox):
                return sent
            await asyncio.sleep(POLL_INTERVAL)
        if loop.time() > deadline:
            raise AssertionError(f"{tag}: nothing from {sender.node} reached {receiver.node}")


class Cluster:
    """Redis and ``size`` nodes on a fresh network, plus the client namespace."""

    def __init__(self, size: int = 3) -> None:
        self.net = Network().create()
        self.client_ns = self.net.host("client", f=100)
        self.redis = Redis(self.net)
        self.nodes = [Node(self.net, i + 1, self.redis) for i in range(size)]
        self.clients: list[Client] = []

    async def start(self) -> Cluster:
        await self.redis.start()
        await asyncio.gather(*(node.start() for node in self.nodes))
        return self

    async def client(self, node: Node) -> Client:
        c = await Client.connect(self.net, node.host)
        self.clients.append(c)
        return c

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        for node in self.nodes:
            node.kill()
        self.redis.close()
        self.net.remove()
