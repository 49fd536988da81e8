"""RFC 6455 behaviour of the connection state machine, fed raw bytes."""

from __future__ import annotations

import os

import pytest

from roost.protocol.connection import State, WebSocketConnection
from roost.protocol.deflate import DeflateParams, PerMessageDeflate, negotiate
from roost.protocol.errors import InvalidState
from roost.protocol.events import Closed
from roost.protocol.frames import _apply_mask_python as pure_mask
from roost.protocol.frames import apply_mask, encode_frame


def frame(opcode: int, payload: bytes, **kw: bool) -> bytes:
    return encode_frame(opcode, payload, mask=os.urandom(4), **kw)


class TestMasking:  # section 5.3
    def test_c_and_python_masking_agree(self) -> None:
        for n in (0, 1, 3, 4, 7, 8, 9, 1000, 65537):
            data, mask = os.urandom(n), os.urandom(4)
            assert apply_mask(data, mask) == pure_mask(data, mask)
            assert apply_mask(apply_mask(data, mask), mask) == data


class TestFragmentation:  # section 5.4
    def test_interleaved_control_frame(self) -> None:
        conn = WebSocketConnection()
        data = frame(1, b"he", fin=False) + frame(9, b"p") + frame(0, b"llo")
        events = conn.receive_data(data)
        assert events[-1] == "hello"

    def test_new_message_inside_fragmented_one_is_1002(self) -> None:
        conn = WebSocketConnection()
        events = conn.receive_data(frame(1, b"a", fin=False) + frame(1, b"b"))
        assert events == [Closed(1002, "new message before the previous one ended")]
        assert conn.state is State.CLOSED


class TestClosing:  # sections 5.5.1 and 7
    def test_close_is_idempotent_and_sending_after_fails(self) -> None:
        conn = WebSocketConnection()
        assert conn.send_close(1000, "bye")
        assert conn.send_close(1000) == b""
        with pytest.raises(InvalidState):
            conn.send_text("late")

    def test_invalid_codes_are_refused_locally(self) -> None:
        with pytest.raises(ValueError):
            WebSocketConnection().send_close(1006)

    def test_deferred_failure_lets_earlier_messages_be_answered(self) -> None:
        conn = WebSocketConnection(defer_failure=True)
        events = conn.receive_data(frame(1, b"first") + frame(1, b"x", rsv1=True))
        assert events[0] == "first" and isinstance(events[1], Closed)
        assert conn.state is State.OPEN and conn.failure == (1002, events[1].reason)
        assert conn.send_text("reply to first")  # still allowed
        conn.fail(*conn.failure)
        assert conn.data_to_send().startswith(b"\x88")
        assert conn.state is State.CLOSED


class TestDeflate:  # RFC 7692
    def test_negotiation(self) -> None:
        assert negotiate(["permessage-deflate"]) == DeflateParams()
        params = negotiate(
            ["permessage-deflate; client_max_window_bits; server_no_context_takeover"]
        )
        assert params is not None and params.server_no_context_takeover
        assert negotiate(["permessage-deflate; bogus=1"]) is None
        assert negotiate(["permessage-deflate; server_max_window_bits=8"]) is None
        assert negotiate(["x-other, permessage-deflate; server_max_window_bits=10"]) == (
            DeflateParams(server_max_window_bits=10)
        )

    def test_compressed_round_trip(self) -> None:
        params = DeflateParams()
        server = WebSocketConnection(deflate=PerMessageDeflate(params))
        client = PerMessageDeflate(
            DeflateParams(server_max_window_bits=15, client_max_window_bits=15)
        )
        for text in ["hello " * 100, "second message", ""]:
            wire = frame(1, client.compress(text.encode()), rsv1=True)
            assert server.receive_data(wire) == [text]
