"""WebSocketChannel, opened by HttpConnection.upgrade on an in-memory transport and fed masked
client frames as bytes: receiving and its queue, sending and corking, the slow-consumer policy,
flow control, the close handshake, the timers, and what the app layer hooks onto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roost.protocol.connection import SharedMessage
from roost.protocol.errors import InvalidState, WebSocketDisconnect
from roost.server.http import HttpConnection
from roost.server.options import WebSocketOptions
from roost.server.serve import Server
from roost.server.websocket import WebSocketChannel
from tests.protocol.wire import close_payload, wire
from tests.server.conftest import MakeServer
from tests.server.fakes import (
    SWITCHING,
    FakeTransport,
    close_frame,
    connect,
    eventually,
    server_frames,
)
from tests.timing import seconds

#: A test that breaks fails in seconds instead of hanging on an event that never comes.
pytestmark = pytest.mark.timeout(10)

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Open:
    """A channel after the 101, its HttpConnection, and the transport the test plays client on."""

    def __init__(self, server: Server, transport: FakeTransport, **options: object) -> None:
        self.server = server
        self.t = transport
        self.conn: HttpConnection = connect(server, transport)
        self.channel: WebSocketChannel = self.conn.upgrade(
            SWITCHING,
            options=WebSocketOptions(**options),  # type: ignore[arg-type]
            deflate=None,
        )
        assert transport.writes == [SWITCHING]
        transport.writes.clear()

    def frames(self) -> list[tuple[int, bytes]]:
        """The frames written since the 101."""
        return server_frames(self.t.data)

    async def until_frames(self, n: int) -> list[tuple[int, bytes]]:
        await self.t.until(lambda: len(self.frames()) >= n)
        return self.frames()


OpenWs = Callable[..., Open]


@pytest.fixture
def open_ws(make_server: MakeServer) -> OpenWs:
    """``open_ws(transport=None, **websocket_options)``: a new channel on a new server."""

    def make(transport: FakeTransport | None = None, **options: object) -> Open:
        return Open(make_server(), transport or FakeTransport(), **options)

    return make


# -- receiving --------------------------------------------------------------------------------


async def test_messages_are_received_in_order(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.t.feed(
        wire(TEXT, b"one")
        + wire(BINARY, b"\x00two")
        + wire(TEXT, b"thr", fin=False)
        + wire(0x0, "ée".encode())
    )
    assert await ws.channel.recv() == "one"
    assert await ws.channel.recv() == b"\x00two"
    assert await ws.channel.recv() == "thrée"


async def test_recv_waits_for_a_message(open_ws: OpenWs) -> None:
    ws = open_ws()
    waiting = asyncio.ensure_future(ws.channel.recv())
    await asyncio.sleep(0)
    assert not waiting.done()
    with pytest.raises(InvalidState, match="already waiting"):
        await ws.channel.recv()
    half = wire(TEXT, b"hello")
    ws.t.feed(half[:4])  # a frame split across reads
    ws.t.feed(half[4:])
    assert await waiting == "hello"


async def test_max_queue_pauses_reading_until_a_quarter_is_left(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(max_queue=4)
    ws.t.feed(b"".join(wire(TEXT, b"%d" % i) for i in range(3)))
    assert ws.t.reading
    ws.t.feed(wire(TEXT, b"3"))
    assert not ws.t.reading and ws.channel.reading_paused
    assert await ws.channel.recv() == "0"
    assert await ws.channel.recv() == "1"
    assert not ws.t.reading  # two are left: more than a quarter of 4
    assert await ws.channel.recv() == "2"
    assert ws.t.reading and not ws.channel.reading_paused
    assert await ws.channel.recv() == "3"


async def test_client_ping_is_answered(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.t.feed(wire(PING, b"are you there"))
    assert ws.frames() == [(PONG, b"are you there")]


async def test_protocol_error_after_messages_closes_once_they_are_read(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    ws.t.feed(wire(TEXT, b"fine") + wire(TEXT, b"unmasked", mask=None))
    assert ws.frames() == []  # the message before the violation is handled first
    assert await ws.channel.recv() == "fine"
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1002
    assert ws.frames()[0][0] == CLOSE and ws.frames()[0][1][:2] == b"\x03\xea"
    assert ws.t.closing


async def test_protocol_error_alone_closes_at_once(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.t.feed(wire(TEXT, b"\xff\xfe"))  # not UTF-8
    assert ws.frames() == [close_frame(1007, b"text message is not valid UTF-8")]
    assert ws.t.closing
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1007


# -- sending ----------------------------------------------------------------------------------


async def test_send_text_and_bytes_write_one_frame_each(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    assert ws.t.write_limits == (64 * 1024, None)
    await ws.channel.send_text("hello")
    await ws.channel.send_bytes(b"\x01" * 200)
    assert ws.t.writes == [b"\x81\x05hello", b"\x82\x7e\x00\xc8" + b"\x01" * 200]


async def test_send_nowait_writes_once_at_the_end_of_the_turn(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    ws.t.buffer_size = 10
    assert ws.channel.send_nowait("a")
    assert ws.channel.send_nowait(b"b")
    assert ws.channel.send_nowait("ignored", SharedMessage("c"))  # shared, already encoded
    assert ws.t.writes == []
    assert ws.channel.buffered == 10 + 3 * 3
    await ws.t.until(lambda: bool(ws.t.writes))
    assert ws.t.writes == [b"\x81\x01a\x82\x01b\x81\x01c"]
    ws.t.buffer_size = 0
    assert ws.channel.buffered == 0
    assert ws.channel.send_nowait("d")  # a new turn: a new write
    await ws.t.until(lambda: len(ws.t.writes) == 2)
    assert ws.t.writes[1] == b"\x81\x01d"


async def test_what_was_queued_goes_before_what_follows(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    ws.channel.send_nowait("a")
    await ws.channel.send_text("b")
    ws.channel.send_nowait("c")
    await ws.channel.ping(b"p")
    ws.channel.send_nowait("d")
    ws.t.feed(wire(PING, b"q"))  # the pong too
    ws.channel.send_nowait("e")
    ws.channel.close(1000)
    assert ws.frames() == [
        (TEXT, b"a"),
        (TEXT, b"b"),
        (TEXT, b"c"),
        (PING, b"p"),
        (TEXT, b"d"),
        (PONG, b"q"),
        (TEXT, b"e"),
        close_frame(1000),
    ]
    writes = len(ws.t.writes)
    await asyncio.sleep(0)  # the flush scheduled for this turn finds nothing left
    assert len(ws.t.writes) == writes


async def test_queued_messages_go_before_the_close_echo(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.channel.send_nowait("a")
    ws.t.feed(wire(CLOSE, close_payload(1000)))  # in the same turn
    assert ws.frames() == [(TEXT, b"a"), close_frame(1000)]
    await asyncio.sleep(0)
    assert ws.frames() == [(TEXT, b"a"), close_frame(1000)]


async def test_send_on_a_closed_channel(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.channel.close(1000)
    assert not ws.channel.open
    assert ws.channel.send_nowait("late") is False
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.send_text("late")
    assert info.value.code == 1000
    with pytest.raises(WebSocketDisconnect):
        await ws.channel.send_bytes(b"late")
    with pytest.raises(WebSocketDisconnect):
        await ws.channel.ping()


# -- the slow-consumer policy -----------------------------------------------------------------


async def test_slow_consumer_is_closed_with_1008(open_ws: OpenWs) -> None:
    ws = open_ws(max_outbound_buffer=100)
    ws.t.buffer_size = 101
    assert ws.channel.send_nowait("x") is False
    assert ws.frames() == [close_frame(1008, b"slow consumer: outbound buffer over its limit")]
    assert ws.t.closing and not ws.channel.open
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1008


async def test_slow_consumer_limit_counts_what_this_turn_queued(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(max_outbound_buffer=100)
    message = "m" * 60  # a 62-byte frame
    assert ws.channel.send_nowait(message)  # 0 buffered
    assert ws.channel.send_nowait(message)  # 62 buffered
    assert ws.channel.send_nowait(message) is False  # 124: over
    # What the slow client had not taken is dropped: only the close goes out.
    assert ws.frames() == [close_frame(1008, b"slow consumer: outbound buffer over its limit")]
    await asyncio.sleep(0)
    assert ws.frames() == [close_frame(1008, b"slow consumer: outbound buffer over its limit")]


async def test_slow_consumer_drop_skips_messages(open_ws: OpenWs) -> None:
    ws = open_ws(max_outbound_buffer=100, slow_consumer="drop")
    ws.t.buffer_size = 101
    assert ws.channel.send_nowait("x") is False
    assert ws.channel.send_nowait("y") is False
    assert ws.channel.dropped == 2 and ws.channel.open
    ws.t.buffer_size = 100  # drained to the limit: delivered again
    assert ws.channel.send_nowait("z")
    await ws.t.until(lambda: bool(ws.t.writes))
    assert ws.frames() == [(TEXT, b"z")]
    assert not ws.t.closing


# -- flow control -----------------------------------------------------------------------------


async def test_send_waits_while_writing_is_paused(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.conn.pause_writing()  # the transport is over write_limit
    assert ws.channel.write_paused
    sending = asyncio.ensure_future(ws.channel.send_text("a"))
    await ws.t.until(lambda: bool(ws.t.writes))  # written, then waits for the drain
    for _ in range(5):
        await asyncio.sleep(0)
    assert not sending.done()
    ws.conn.resume_writing()
    await sending
    assert ws.frames() == [(TEXT, b"a")]


async def test_paused_sender_learns_of_a_disconnect(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.conn.pause_writing()
    sending = asyncio.ensure_future(ws.channel.send_bytes(b"a"))
    await ws.t.until(lambda: bool(ws.t.writes))
    ws.t.lose()
    with pytest.raises(WebSocketDisconnect) as info:
        await sending
    assert info.value.code == 1006


async def test_pings_are_coalesced_while_writing_is_paused(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    ws.conn.pause_writing()
    ws.t.feed(wire(PING, b"1") + wire(PING, b"2"))
    assert ws.frames() == []  # no pong grows a buffer the client does not read
    assert not ws.t.reading and ws.channel.reading_paused
    ws.conn.resume_writing()
    assert ws.frames() == [(PONG, b"2")]  # only the latest is answered
    assert ws.t.reading and not ws.channel.reading_paused


async def test_owed_pong_goes_out_with_the_next_message(
    open_ws: OpenWs,
) -> None:
    ws = open_ws()
    ws.conn.pause_writing()
    ws.t.feed(wire(PING, b"1"))
    assert ws.channel.send_nowait("a")
    assert ws.frames() == [(PONG, b"1")]
    assert ws.t.reading
    await ws.t.until(lambda: len(ws.t.writes) == 2)
    assert ws.frames() == [(PONG, b"1"), (TEXT, b"a")]


# -- closing ----------------------------------------------------------------------------------


async def test_server_initiated_close_handshake(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.channel.close(1000, "bye")
    ws.channel.close(1001, "again")  # idempotent
    assert ws.frames() == [close_frame(1000, b"bye")]
    assert ws.channel.close_code == 1000
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert (info.value.code, info.value.reason) == (1000, "bye")
    assert not ws.t.closing  # the client's close frame is awaited
    ws.t.feed(wire(CLOSE, close_payload(1000)))
    assert ws.t.closing  # the server closes the TCP connection first
    await ws.channel.wait_closed()
    assert not ws.t.aborted
    assert ws.frames() == [close_frame(1000, b"bye")]


async def test_close_reads_the_answer_even_with_a_full_queue(open_ws: OpenWs) -> None:
    ws = open_ws(max_queue=2)
    ws.t.feed(wire(TEXT, b"0") + wire(TEXT, b"1"))
    assert not ws.t.reading  # the handler is behind
    ws.channel.close(1001, "going")  # such as at shutdown
    assert ws.t.reading  # or the client's close frame could never be read
    ws.t.feed(b"".join(wire(TEXT, b"%d" % i) for i in range(2, 6)))  # sent before our close
    assert ws.t.reading
    ws.t.feed(wire(CLOSE, close_payload(1001)))
    assert ws.t.endings == ["close"]  # a clean close, not a timeout
    # What was queued is still read; nothing past max_queue was kept.
    assert [await ws.channel.recv(), await ws.channel.recv()] == ["0", "1"]
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1001


async def test_client_initiated_close_handshake(open_ws: OpenWs) -> None:
    ws = open_ws()
    waiting = asyncio.ensure_future(ws.channel.recv())
    await asyncio.sleep(0)
    ws.t.feed(wire(CLOSE, close_payload(1001, b"going away")))
    assert ws.frames() == [close_frame(1001)]  # the code echoed
    assert ws.t.closing
    with pytest.raises(WebSocketDisconnect) as info:
        await waiting
    assert (info.value.code, info.value.reason) == (1001, "going away")
    await ws.channel.wait_closed()
    assert ws.channel.close_code == 1001


async def test_fail_closes_at_once(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.channel.send_nowait("before")
    ws.channel.fail(1011, "oops")
    assert ws.frames() == [(TEXT, b"before"), close_frame(1011, b"oops")]
    assert ws.t.closing
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1011
    await ws.channel.wait_closed()


async def test_close_without_an_answer_aborts_after_close_timeout(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(close_timeout=0.02)
    ws.channel.close(1000)
    await ws.t.until_lost()
    assert ws.t.endings == ["abort", "lost"]


async def test_tcp_close_that_does_not_finish_is_aborted(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(FakeTransport(linger=True), close_timeout=0.02)
    ws.t.feed(wire(CLOSE, close_payload(1000)))
    assert ws.t.endings == ["close"]
    await ws.t.until_lost()
    assert ws.t.endings == ["close", "abort", "lost"]


async def test_abrupt_disconnect_is_1006(open_ws: OpenWs) -> None:
    ws = open_ws()
    ws.t.feed(wire(TEXT, b"last words"))
    ws.t.lose()
    assert await ws.channel.recv() == "last words"  # what arrived is still delivered
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1006
    assert ws.channel.ended and ws.channel not in ws.server.channels


async def test_eof_before_a_close_frame_is_1006(open_ws: OpenWs) -> None:
    ws = open_ws()
    waiting = asyncio.ensure_future(ws.channel.recv())
    await asyncio.sleep(0)
    ws.conn.eof_received()
    with pytest.raises(WebSocketDisconnect) as info:
        await waiting
    assert info.value.code == 1006


# -- timers -----------------------------------------------------------------------------------


async def test_keepalive_ping_answered_keeps_the_connection(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(ping_interval=0.01, ping_timeout=5)
    (opcode, payload), *_ = await ws.until_frames(1)
    assert opcode == PING and len(payload) == 4
    ws.t.feed(wire(PONG, payload))
    # One ping at a time: a second ping shows the first counts as answered.
    frames = await ws.until_frames(2)
    assert frames[1][0] == PING and frames[1][1] != payload
    assert ws.channel.open


@pytest.mark.parametrize("answer", [None, b"nope"], ids=["silent", "wrong-pong"])
async def test_unanswered_ping_fails_with_1011(
    open_ws: OpenWs,
    answer: bytes | None,
) -> None:
    ws = open_ws(ping_interval=0.01, ping_timeout=0.05)
    (ping,) = await ws.until_frames(1)
    if answer is not None:
        ws.t.feed(wire(PONG, answer))  # only the ping's own payload answers it
    await ws.t.until_lost()
    assert ws.t.aborted
    # No second ping: the first was never answered.
    assert ws.frames() == [ping, close_frame(1011, b"keepalive ping timeout")]
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1011


async def test_idle_connection_is_closed_with_1001(
    open_ws: OpenWs,
) -> None:
    ws = open_ws(ping_interval=None, idle_timeout=0.02)
    await ws.until_frames(1)
    assert ws.frames() == [close_frame(1001, b"idle timeout")]
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.channel.recv()
    assert info.value.code == 1001


async def test_timers_stop_with_the_connection(open_ws: OpenWs) -> None:
    ws = open_ws(ping_interval=0.01, ping_timeout=0.01, idle_timeout=0.01)
    ws.t.lose()
    timers_due = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, timers_due.set)
    await timers_due.wait()
    assert ws.t.writes == []


# -- what the app layer hooks onto ------------------------------------------------------------


async def test_lost_callbacks_and_wait_closed(open_ws: OpenWs) -> None:
    ws = open_ws()
    calls: list[str] = []
    ws.channel.add_lost_callback(lambda: calls.append("first"))
    ws.channel.add_lost_callback(lambda: calls.append("second"))
    waiting = asyncio.ensure_future(ws.channel.wait_closed())
    await asyncio.sleep(0)
    assert not waiting.done() and calls == []
    ws.t.lose()
    assert calls == ["first", "second"]  # at once, in order
    await waiting
    ws.channel.add_lost_callback(lambda: calls.append("late"))
    assert calls == ["first", "second"]  # soon, not inside add_lost_callback
    await eventually(lambda: len(calls) == 3)
    assert calls[-1] == "late"
    await ws.channel.wait_closed()  # returns at once


async def test_track_and_shutting_down(open_ws: OpenWs) -> None:
    ws = open_ws()
    done = asyncio.Event()
    task = asyncio.ensure_future(done.wait())
    ws.channel.track(task)  # type: ignore[arg-type]
    assert task in ws.server.tasks
    assert not ws.channel.shutting_down
    shutdown = asyncio.ensure_future(ws.server.shutdown(timeout=seconds(5)))
    await ws.t.until(lambda: bool(ws.t.writes))
    assert ws.channel.shutting_down
    assert ws.frames() == [close_frame(1001, b"server shutting down")]
    assert not shutdown.done()  # it waits for the tracked task
    done.set()
    ws.t.feed(wire(CLOSE, close_payload(1001)))
    await shutdown
    assert task.done() and task not in ws.server.tasks


# -- what the session log reads ---------------------------------------------------------------


async def test_messages_are_counted_each_way(open_ws: OpenWs) -> None:
    ws = open_ws(slow_consumer="drop", max_outbound_buffer=10)
    ws.t.feed(wire(TEXT, b"a") + wire(BINARY, b"b") + wire(PING, b"p"))
    ws.t.feed(wire(TEXT, b"c", fin=False))  # not a whole message yet
    assert (ws.channel.messages_in, ws.channel.messages_out) == (2, 0)
    ws.t.feed(wire(0x0, b"d"))
    await ws.channel.send_text("x")
    await ws.channel.send_bytes(b"y")
    assert ws.channel.send_nowait("z")
    ws.t.buffer_size = 100  # over max_outbound_buffer: dropped, not counted
    ws.channel.flush()
    assert not ws.channel.send_nowait("dropped")
    assert (ws.channel.messages_in, ws.channel.messages_out) == (3, 3)


@pytest.mark.parametrize(
    ("ending", "code", "closed_by"),
    [
        ("client close frame", 4001, "client"),
        ("server close", 4002, "server"),
        ("protocol error", 1002, "server"),
        ("connection dropped", 1006, "client"),
    ],
)
async def test_who_began_the_closing(
    open_ws: OpenWs, ending: str, code: int, closed_by: str
) -> None:
    ws = open_ws()
    if ending == "client close frame":
        ws.t.feed(wire(CLOSE, close_payload(4001)))
    elif ending == "server close":
        ws.channel.close(4002)
        ws.t.feed(wire(CLOSE, close_payload(4002)))
    elif ending == "protocol error":
        ws.t.feed(b"\x83\x80abcd")  # a frame with a reserved opcode
    else:
        ws.t.lose()
    await ws.t.until_lost()
    assert (ws.channel.close_code, ws.channel.closed_by) == (code, closed_by)
