"""``--processes 2``: two workers share the port, and every delivery call crosses workers."""

from __future__ import annotations

import websockets

from tests.integration.cluster import ClusterServer, ask, eventually, receive_text


async def test_two_workers_reach_each_other() -> None:
    server = await ClusterServer("--processes", "2").ready()
    clients: list[tuple[websockets.ClientConnection, dict[str, object]]] = []
    try:
        by_pid: dict[object, tuple[websockets.ClientConnection, dict[str, object]]] = {}
        for _ in range(60):  # the kernel spreads accepts over the workers
            ws, hello = await server.client()
            clients.append((ws, hello))
            by_pid.setdefault(hello["pid"], (ws, hello))
            if len(by_pid) == 2:
                break
        assert len(by_pid) == 2, "every connection landed in the same worker"
        (a, _), (b, b_hello) = by_pid.values()
        all_ids = sorted(str(h["id"]) for _, h in clients)

        async def everyone_visible() -> bool:
            return (await ask(a, op="connections"))["connections"] == all_ids

        await eventually(everyone_visible)
        await a.send('{"op": "broadcast", "text": "hello every worker"}')
        assert await receive_text(b) == "hello every worker"
        assert await ask(a, op="send_to", id=b_hello["id"], text="direct") == {"sent": True}
        assert await receive_text(b) == "direct"
        await ask(b, op="join", room="ops")

        async def room_visible() -> bool:
            return (await ask(a, op="connections", room="ops"))["connections"] == [b_hello["id"]]

        await eventually(room_visible)
        await ask(a, op="disconnect", id=b_hello["id"])
        await b.wait_closed()
        assert (b.close_code, b.close_reason) == (4000, "kicked")
    finally:
        code = server.stop()
        for ws, _ in clients:
            if ws.close_code is None:
                await ws.wait_closed()
    assert code == 0
    assert all(ws.close_code in (1001, 4000, 1000) for ws, _ in clients)
    assert any(ws.close_code == 1001 for ws, _ in clients)
