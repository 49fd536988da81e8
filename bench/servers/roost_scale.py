"""roost app of ``bench/scale.py`` and ``bench/latency.py``, served by the roost command:

    cd bench/servers && ../.venv/bin/python -m roost roost_scale:app --port 8001 [--processes 2]

- ``/broadcast``: holds connections with roost's default endpoint options (keepalive pings
  every 20 s included); every message received is broadcast to every connection of the
  endpoint, across the workers of ``--processes N`` (through the relay).
- ``/echo``: echoes every message.
- ``/fanout``: every message received is broadcast to every connection of ``/fanout``.
- ``GET /gc``: this process's garbage collections since it started, per generation, with the
  CPU time they took (a collection stops the process for that long, more if the machine is
  busy): ``{"collections": [g0, g1, g2], "total_ms": [...], "max_ms": [...]}`` (``max_ms``:
  the longest since the previous ``GET /gc``).
- ``GET /gc/full``: runs a full collection now and answers the CPU and wall time it took and
  how many objects it examined: ``{"ms": ..., "wall_ms": ..., "objects": ...}``; what a full
  collection, which CPython starts by itself as the heap grows, costs with the connections
  held.

``ROOST_BENCH_GC=off`` switches the cycle collector off (to measure what it costs).
"""

import gc
import os
import time

from roost import Roost

app = Roost(__file__)

_started: list[int] = [0]
_collections = [0, 0, 0]
_total_ns = [0, 0, 0]
_max_ns = [0, 0, 0]


def _timed(phase: str, info: dict[str, int]) -> None:
    """Time each collection (``gc.callbacks``): the pauses it makes in serving."""
    if phase == "start":
        _started[0] = time.thread_time_ns()
        return
    generation = info["generation"]
    took = time.thread_time_ns() - _started[0]
    _collections[generation] += 1
    _total_ns[generation] += took
    _max_ns[generation] = max(_max_ns[generation], took)


gc.callbacks.append(_timed)
if os.environ.get("ROOST_BENCH_GC") == "off":
    gc.disable()


@app.websocket("/broadcast")
async def broadcast(websocket):
    while True:
        await websocket.broadcast(await websocket.receive_text())


@app.websocket("/echo", ping_interval=None)
async def echo(websocket):
    while True:
        await websocket.send_text(await websocket.receive_text())


@app.websocket("/fanout", ping_interval=None)
async def fanout(websocket):
    while True:
        await websocket.broadcast(await websocket.receive_text())


@app.get("/gc")
async def collections():
    figures = {
        "collections": list(_collections),
        "total_ms": [ns / 1e6 for ns in _total_ns],
        "max_ms": [ns / 1e6 for ns in _max_ns],
    }
    _max_ns[:] = [0, 0, 0]
    return figures


@app.get("/gc/full")
async def full_collection():
    objects = len(gc.get_objects())
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    gc.collect()
    cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
    return {"ms": cpu / 1e6, "wall_ms": wall / 1e6, "objects": objects}
