"""``--processes 2``: two workers share the port, and every delivery call crosses workers;
signals to the supervisor do what docs/deployment.md says, no process outlives it, and the
relay comes back when it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
import websockets

from tests.integration.cluster import (
    ClusterServer,
    ask,
    children,
    eventually,
    exited,
    listening,
    receive_text,
    roost_command,
)
from tests.integration.guide_runner import free_port
from tests.timing import seconds

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")


async def test_two_workers_reach_each_other() -> None:
    server = await ClusterServer("--processes", "2").ready()
    clients: list[tuple[websockets.ClientConnection, dict[str, object]]] = []
    try:
        by_pid: dict[object, tuple[websockets.ClientConnection, dict[str, object]]] = {}
        for _ in range(30):
            # Connections opened at the same time wake both workers' accept loops; one after
            # another, the worker that accepted last tends to win every time (and on a busy
            # machine, batch after batch): keep the batches until both have some.
            batch = await asyncio.gather(*(server.client() for _ in range(10)))
            for ws, hello in batch:
                by_pid.setdefault(hello["pid"], (ws, hello))
            for ws, hello in batch:
                if by_pid[hello["pid"]][0] is ws or len(clients) < 20:
                    clients.append((ws, hello))
                else:
                    await ws.close()
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
        code = await server.stop()
        for ws, _ in clients:
            if ws.close_code is None:
                await ws.wait_closed()
    assert code == 0
    assert all(ws.close_code in (1001, 4000, 1000) for ws, _ in clients)
    assert any(ws.close_code == 1001 for ws, _ in clients)


async def wait_exited(pids: set[int], seconds: float = 30) -> None:
    async def all_gone() -> bool:
        return all(exited(pid) for pid in pids)

    await eventually(all_gone, seconds)


async def test_sighup_replaces_the_workers_and_keeps_serving() -> None:
    server = await ClusterServer("--processes", "2", cli=True).ready()
    try:
        old = await server.clients_on_each_worker()
        server.proc.send_signal(signal.SIGHUP)
        for ws, _ in old.values():
            await asyncio.wait_for(ws.wait_closed(), seconds(30))
            assert (ws.close_code, ws.close_reason) == (1012, "server restarting")
        await wait_exited(set(old))
        assert server.proc.poll() is None, "the supervisor exited on SIGHUP"
        new = await server.clients_on_each_worker()
        assert not set(new) & set(old)
        assert len(children(server.proc.pid)) == 3  # two workers and the relay
        (a, _), (b, _) = new.values()
        await a.send('{"op": "broadcast", "text": "after the restart"}')
        assert await receive_text(b) == "after the restart"
        assert "SIGHUP: replacing the workers one at a time" in server.log()
    finally:
        code = await server.stop()
    assert code == 0


async def test_killed_supervisor_takes_its_workers_and_relay_down(tmp_path: Path) -> None:
    server = ClusterServer("--processes", "2", cli=True, env={"TMPDIR": str(tmp_path)})
    await server.ready()
    # The relay's socket (the port may answer before the relay has made it).
    await eventually(lambda: [p.name[:6] for p in tmp_path.iterdir()] == ["roost-"])
    clients = await server.clients_on_each_worker()

    async def three_children() -> bool:
        return len(children(server.proc.pid)) == 3

    await eventually(three_children)
    started = children(server.proc.pid)
    assert set(clients) < started
    server.proc.kill()
    assert await server.wait() == -signal.SIGKILL
    for ws, _ in clients.values():
        await asyncio.wait_for(ws.wait_closed(), seconds(30))
        assert ws.close_code == 1001  # each worker shut down gracefully
    await wait_exited(started)
    assert not listening(server.port)
    assert list(tmp_path.iterdir()) == []  # the relay removed its socket
    assert "the parent process is gone: shutting down" in server.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_stop_signal_makes_the_workers_exit_now(sig: int) -> None:
    server = await ClusterServer("--processes", "2", cli=True).ready()
    try:
        ws, _ = await server.client("/linger")
        started = children(server.proc.pid)
        server.proc.send_signal(sig)
        await asyncio.wait_for(ws.wait_closed(), seconds(10))
        assert ws.close_code == 1001
        # Its on_close never ends: the shutdown waits for it (up to 60 s) ...
        assert server.proc.poll() is None
        server.proc.send_signal(sig)  # ... until the second signal.
        assert await server.wait() == 128 + sig
        await wait_exited(started)
        assert f"second {signal.Signals(sig).name}: the workers exit now" in server.log()
    finally:
        await server.stop(signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_every_process_at_once_is_one_graceful_stop(sig: int) -> None:
    """Ctrl-C reaches the whole process group, and systemd signals the whole cgroup: the
    workers get the signal from there and a stop from the supervisor, which must not add up
    to "exit now"."""
    server = ClusterServer("--processes", "2", cli=True, start_new_session=True)
    await server.ready()
    try:
        clients = await server.clients_on_each_worker()

        async def three_children() -> bool:
            return len(children(server.proc.pid)) == 3

        await eventually(three_children)
        os.killpg(server.proc.pid, sig)
        assert await server.wait() == 0
        for ws, _ in clients.values():
            await asyncio.wait_for(ws.wait_closed(), seconds(10))
            assert ws.close_code == 1001
        assert "exit now" not in server.log()
    finally:
        await server.stop(signal.SIGKILL)


async def test_the_relay_comes_back_and_cross_worker_delivery_resumes() -> None:
    server = await ClusterServer("--processes", "2", cli=True).ready()
    try:
        clients = await server.clients_on_each_worker()
        (a, a_hello), (b, b_hello) = clients.values()
        b_pid = int(str(b_hello["pid"]))
        extra = None
        for _ in range(100):  # a second client on b's worker, to leave during the outage
            ws, hello = await server.client()
            if hello["pid"] == b_pid:
                extra = ws
                break
            await ws.close()
        assert extra is not None
        every = sorted([str(a_hello["id"]), str(b_hello["id"]), str(hello["id"])])

        async def all_visible() -> bool:
            return (await ask(a, op="connections"))["connections"] == every

        await eventually(all_visible)
        (relay,) = children(server.proc.pid) - set(clients)
        os.kill(relay, signal.SIGKILL)
        await extra.close()  # its presence update is published while the relay is down

        async def new_relay() -> bool:
            return len(children(server.proc.pid) - set(clients) - {relay}) == 1

        await eventually(new_relay)

        async def delivered() -> bool:
            await a.send('{"op": "broadcast", "text": "probe"}')
            try:
                return await receive_text(b, timeout=seconds(0.2)) == "probe"
            except TimeoutError:
                return False

        await eventually(delivered, 20)
        left = sorted([str(a_hello["id"]), str(b_hello["id"])])

        async def presence_right_again() -> bool:
            seen_by_a = (await ask(a, op="connections"))["connections"]
            seen_by_b = (await ask(b, op="connections"))["connections"]
            return seen_by_a == seen_by_b == left

        await eventually(presence_right_again)
        log = server.log()
        assert "the relay exited (status -9); starting a new one" in log
        assert log.count("lost the link to the worker relay") == 2  # once per worker
        assert log.count("link to the worker relay re-established") == 2
    finally:
        code = await server.stop()
    assert code == 0


CRASHING_APP = """
from roost import Roost

app = Roost(__file__)


@app.startup_handler
def broken():
    raise RuntimeError("cannot start")
"""


async def test_workers_that_keep_dying_make_the_supervisor_give_up(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(CRASHING_APP)
    done = await asyncio.to_thread(
        subprocess.run,
        [*roost_command(), "app:app", "--port", str(free_port()), "--processes", "2"],
        cwd=tmp_path,
        capture_output=True,
        timeout=seconds(60),
        check=False,
    )
    assert done.returncode == 1
    assert b"workers keep dying; giving up" in done.stderr
