"""Server pings find dead peers; idle timeouts close quiet ones; live peers stay."""

from __future__ import annotations

import asyncio

import websockets

from roost import Roost
from tests.raw_ws import client_frame, connect, read_frame
from tests.timing import seconds


def make_app(closed: list[int | None], **options: object) -> Roost:
    app = Roost(__file__)

    @app.websocket("/ws", **options)
    async def ws(websocket):  # type: ignore[no-untyped-def]
        while True:
            await websocket.send(await websocket.receive())

    @ws.on_close
    def gone(websocket):  # type: ignore[no-untyped-def]
        closed.append(websocket.close_code)

    return app


async def wait_for(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_unanswered_pings_close_with_1011(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, ping_interval=0.1, ping_timeout=0.2)) as server:
        reader, writer, _ = await connect(server.port, "/ws")
        opcode, _ = await read_frame(reader)
        assert opcode == 9  # a ping, which this peer never answers
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 8:
                assert int.from_bytes(payload[:2], "big") == 1011
                break
        await wait_for(lambda: closed == [1011])
        writer.close()


async def test_answered_pings_keep_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, ping_interval=0.05, ping_timeout=0.1)) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            for i in range(10):  # spans many ping intervals
                await asyncio.sleep(0.05)
                await ws.send(f"still {i}")
                assert await ws.recv() == f"still {i}"
        await wait_for(lambda: closed == [1000])


async def test_idle_timeout_closes_with_1001(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, idle_timeout=0.2, ping_interval=None)) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            await ws.wait_closed()
            assert ws.close_code == 1001
            assert ws.close_reason == "idle timeout"
        await wait_for(lambda: closed == [1001])


async def test_answering_server_pings_is_not_activity(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    options = {"idle_timeout": 0.3, "ping_interval": 0.02, "ping_timeout": 5.0}
    async with serve(make_app(closed, **options)) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        # The client answers every server ping with a pong, and sends no message.
        async with websockets.connect(url, ping_interval=None) as ws:
            await asyncio.wait_for(ws.wait_closed(), seconds(10))
            assert (ws.close_code, ws.close_reason) == (1001, "idle timeout")
        await wait_for(lambda: closed == [1001])


async def test_pings_pongs_and_unfinished_messages_are_not_activity(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, idle_timeout=0.3, ping_interval=None)) as server:
        reader, writer, _ = await connect(server.port, "/ws")
        writer.write(client_frame(1, b"never ", fin=False))  # a message that never ends

        def chatter() -> None:
            writer.write(
                client_frame(0, b"", fin=False)  # one more fragment of it
                + client_frame(10, b"unsolicited")
                + client_frame(9, b"are you there")
            )

        async def talk_until_closed() -> bytes:
            chatter()
            while True:  # each pong from the server brings more chatter, as fast as it goes
                opcode, payload = await read_frame(reader)
                if opcode == 8:
                    return payload
                assert (opcode, payload) == (10, b"are you there")
                chatter()

        payload = await asyncio.wait_for(talk_until_closed(), seconds(10))
        assert payload == (1001).to_bytes(2, "big") + b"idle timeout"
        writer.write(client_frame(8, payload[:2]))  # the client's half of the close handshake
        await wait_for(lambda: closed == [1001])
        writer.close()


async def test_messages_keep_the_connection_open(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, idle_timeout=1.0, ping_interval=None)) as server:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.5  # well past the idle timeout
            n = 0
            while loop.time() < end:
                await ws.send(f"m{n}")  # one message every 0.1 s, each a fresh start
                assert await ws.recv() == f"m{n}"
                await asyncio.sleep(0.1)
                n += 1
        await wait_for(lambda: closed == [1000])


async def test_timers_wait_while_roost_is_not_reading(serve) -> None:  # type: ignore[no-untyped-def]
    """With reading paused (max_queue), neither the idle nor the ping timeout can fire: the
    client's messages and pongs wait in the socket. The clocks restart once reading does."""
    app = Roost(__file__)
    gate = asyncio.Event()
    closed: list[int | None] = []
    options = {"max_queue": 2, "idle_timeout": 0.3, "ping_interval": 0.05, "ping_timeout": 0.2}

    @app.websocket("/slow", **options)
    async def slow(websocket):  # type: ignore[no-untyped-def]
        await gate.wait()
        for i in range(20):
            assert await websocket.receive_text() == f"m{i}"
        await websocket.send_text("all 20")
        await websocket.receive()

    @slow.on_close
    def gone(websocket):  # type: ignore[no-untyped-def]
        closed.append(websocket.close_code)

    async with serve(app) as server:
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/slow", ping_interval=None
        ) as ws:
            for i in range(20):
                await ws.send(f"m{i}")
            await wait_for(lambda: any(c.reading_paused for c in server.channels))
            # Stay paused for several idle and ping timeouts; the connection must survive.
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.0
            await wait_for(lambda: loop.time() >= end)
            assert closed == []
            gate.set()
            assert await asyncio.wait_for(ws.recv(), seconds(5)) == "all 20"
            # Afterwards the client is quiet, so the idle timeout does close it.
            await asyncio.wait_for(ws.wait_closed(), seconds(10))
            assert ws.close_code == 1001
        await wait_for(lambda: closed == [1001])


async def test_only_a_pong_with_the_pings_payload_answers_it(serve) -> None:  # type: ignore[no-untyped-def]
    closed: list[int | None] = []
    async with serve(make_app(closed, ping_interval=0.05, ping_timeout=0.2)) as server:
        reader, writer, _ = await connect(server.port, "/ws")

        async def answer_wrongly() -> bytes:
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 8:
                    return payload
                assert opcode == 9
                writer.write(client_frame(10, payload + b"?"))  # a pong, but not to that ping

        payload = await asyncio.wait_for(answer_wrongly(), seconds(10))
        assert payload[:2] == (1011).to_bytes(2, "big")
        await wait_for(lambda: closed == [1011])
        writer.close()
