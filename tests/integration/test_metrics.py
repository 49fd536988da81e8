"""The Prometheus endpoint: values checked after known traffic, one process and two."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from roost import Roost, ServerOptions
from roost.server.options import WebSocketOptions
from tests.http_client import request
from tests.integration.cluster import ClusterServer
from tests.timing import eventually, seconds

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """sample name and sorted labels -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(port: int) -> Samples:
    reply = await request(port, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return parse(reply.body.decode())


def metrics_app() -> Roost:
    app = Roost(__file__, server_options=ServerOptions(metrics_path="/metrics"))

    @app.websocket("/echo", ping_interval=None)
    async def echo(websocket):  # type: ignore[no-untyped-def]
        while True:
            text = await websocket.receive_text()
            if text == "fan":
                await websocket.broadcast("all")
            elif text == "bye":
                await websocket.close(4001, "bye")
                return
            else:
                await websocket.send_text(text)

    @app.websocket("/boom", ping_interval=None)
    async def boom(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive_text()
        raise RuntimeError("boom")

    @app.get("/items/:item")
    def item(item: str) -> str:
        return item

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("fail")

    return app


async def test_values_after_known_traffic(serve) -> None:  # type: ignore[no-untyped-def]
    app = metrics_app()
    async with serve(app) as server:
        port = server.port
        url = f"ws://127.0.0.1:{port}"
        a = await websockets.connect(f"{url}/echo", compression=None)
        b = await websockets.connect(f"{url}/echo", compression=None)
        for text in ("one", "two", "three"):
            await a.send(text)
            assert await asyncio.wait_for(a.recv(), seconds(5)) == text
        await b.send("fan")  # reaches a and b
        assert await asyncio.wait_for(a.recv(), seconds(5)) == "all"
        assert await asyncio.wait_for(b.recv(), seconds(5)) == "all"
        for path in ("/items/1", "/items/2", "/nothing/here", "/fail"):
            await request(port, "GET", path)
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{url}/missing")

        samples = await scrape(port)
        assert value(samples, "roost_websocket_connections", endpoint="/echo") == 2
        assert (
            value(samples, "roost_websocket_handshakes_total", outcome="accepted", status="101")
            == 2
        )
        assert (
            value(samples, "roost_websocket_handshakes_total", outcome="rejected", status="404")
            == 1
        )
        assert value(samples, "roost_websocket_messages_received_total") == 4
        assert value(samples, "roost_websocket_messages_sent_total") == 5  # 3 echoes, 2 "all"
        # Unmasked frames of 2-byte headers: the echoes and the broadcasts, by their lengths.
        assert value(samples, "roost_websocket_sent_bytes_total") == (2 + 3) + (2 + 3) + (
            2 + 5
        ) + 2 * (2 + 3)
        # The client's frames are masked: 6 header bytes each.
        assert value(samples, "roost_websocket_received_bytes_total") == 6 * 4 + 3 + 3 + 5 + 3
        assert value(samples, "roost_broadcast_deliveries_count") == 1
        assert value(samples, "roost_broadcast_deliveries_sum") == 2
        assert value(samples, "roost_broadcast_deliveries_bucket", le="1.0") == 0
        assert value(samples, "roost_broadcast_deliveries_bucket", le="10.0") == 1
        http = "roost_http_requests_total"
        assert value(samples, http, route="/items/:item", method="GET", status="200") == 2
        assert value(samples, http, route="<unmatched>", method="GET", status="404") == 1
        assert value(samples, http, route="/fail", method="GET", status="500") == 1
        assert not any("/items/1" in str(key) for key in samples)  # never the raw path
        duration = "roost_http_request_duration_seconds_count"
        assert value(samples, duration, route="/items/:item", method="GET") == 2
        assert (
            value(samples, "roost_handler_errors_total", endpoint="/fail", callback="handler") == 1
        )

        # Closes: the client's 1000 (echoed), the server's 4001, a handler error's 1011.
        await a.close()
        await b.send("bye")
        await asyncio.wait_for(b.wait_closed(), seconds(5))
        c = await websockets.connect(f"{url}/boom")
        await c.send("x")
        await asyncio.wait_for(c.wait_closed(), seconds(5))
        assert c.close_code == 1011

        async def closed() -> bool:
            s = await scrape(port)
            return value(s, "roost_websocket_connections", endpoint="/echo") == 0 and (
                value(s, "roost_websocket_close_codes_received_total", code="1011") == 1
            )

        await eventually(closed, what="the connections ended")
        samples = await scrape(port)
        sent = "roost_websocket_close_codes_sent_total"
        received = "roost_websocket_close_codes_received_total"
        assert value(samples, sent, code="1000") == 1  # the echo to a's close
        assert value(samples, sent, code="4xxx") == 1
        assert value(samples, sent, code="1011") == 1
        assert value(samples, received, code="1000") == 1
        assert value(samples, received, code="4xxx") == 1  # b's echo of the 4001
        assert (
            value(samples, "roost_handler_errors_total", endpoint="/boom", callback="handler") == 1
        )
        # Totals of ended connections stay: a's and b's messages plus c's one.
        assert value(samples, "roost_websocket_messages_received_total") == 6
        http = "roost_http_requests_total"
        assert value(samples, http, route="/metrics", method="GET", status="200") >= 2


async def test_slow_consumer_closes_drops_and_high_water(serve) -> None:  # type: ignore[no-untyped-def]
    limit = 64 * 1024
    app = Roost(__file__, server_options=ServerOptions(metrics_path="/metrics"))
    drop = WebSocketOptions(max_outbound_buffer=limit, slow_consumer="drop")

    @app.websocket("/close", ping_interval=None, max_outbound_buffer=limit)
    async def closing(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive_text()
        for _ in range(10_000):
            if not await websocket.send_to(websocket.id, "x" * 1024):
                break
            await asyncio.sleep(0)
        await websocket.receive_text()

    @app.websocket(
        "/drop", ping_interval=None, max_outbound_buffer=limit, slow_consumer=drop.slow_consumer
    )
    async def dropping(websocket):  # type: ignore[no-untyped-def]
        await websocket.receive_text()
        for _ in range(200):  # up to 200 MiB: past any socket buffer
            for _ in range(1_000):
                await websocket.send_to(websocket.id, "x" * 1024)
            await asyncio.sleep(0)
        await websocket.send_text("done")
        await websocket.receive_text()

    async with serve(app) as server:
        port = server.port
        for path in ("/close", "/drop"):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                (
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
                + b"\x81\x80\x00\x00\x00\x00"  # an empty masked text frame; then: no reading
            )
            await writer.drain()

            async def counted(name: str = path) -> bool:
                s = await scrape(port)
                if name == "/close":
                    return value(s, "roost_websocket_slow_consumer_closes_total") == 1
                return value(s, "roost_websocket_dropped_messages_total") > 0

            await eventually(counted, what=f"the slow consumer on {path}")
            writer.close()
        samples = await scrape(port)
        assert value(samples, "roost_websocket_outbound_buffer_high_water_bytes") > limit
        assert value(samples, "roost_websocket_close_codes_sent_total", code="1008") == 1


async def test_off_by_default_and_head(serve) -> None:  # type: ignore[no-untyped-def]
    app = Roost(__file__)

    @app.get("/metrics")
    def own() -> str:
        return "the app's own"

    async with serve(app) as server:
        reply = await request(server.port, "GET", "/metrics")
        assert reply.body == b"the app's own"
    async with serve(metrics_app()) as server:
        head = await request(server.port, "HEAD", "/metrics")
        assert (head.status, head.body) == (200, b"")
        post = await request(server.port, "POST", "/metrics")
        assert post.status == 405


async def test_sum_over_two_workers() -> None:
    server = await ClusterServer("--processes", "2", "--metrics", cli=True).ready()
    try:
        clients = await server.clients_on_each_worker(2)
        extra, _ = await server.client()  # a third on either worker
        for ws, _ in clients.values():
            await ws.send('{"op": "connections"}')
            await asyncio.wait_for(ws.recv(), seconds(5))

        async def summed() -> bool:
            s = await scrape(server.port)
            return (
                value(s, "roost_websocket_connections", endpoint="/ws") == 3
                and value(s, "roost_websocket_messages_received_total") == 2
            )

        await eventually(summed, what="the sum over both workers")
        samples = await scrape(server.port)
        # Handshakes: every connection clients_on_each_worker opened (some closed again).
        assert (
            value(samples, "roost_websocket_handshakes_total", outcome="accepted", status="101")
            >= 3
        )
        for ws, _ in clients.values():
            await ws.close()
        await extra.close()
    finally:
        await server.stop()
