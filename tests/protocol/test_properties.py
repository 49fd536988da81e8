"""Property tests on the sans-I/O core: round-trips, robustness, fragmentation."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.protocol.connection import WebSocketConnection
from roost.protocol.events import Closed, Ping, Pong
from roost.protocol.frames import (
    HAS_SPEEDUPS,
    _parse_frame_python,
    encode_frame,
    is_valid_close_code,
)

SETTINGS = settings(max_examples=150, deadline=None)
MASK = st.binary(min_size=4, max_size=4)
LENGTHS = st.one_of(st.integers(0, 125), st.integers(126, 65535), st.integers(65536, 70000))


@SETTINGS
@given(length=LENGTHS, opcode=st.sampled_from([1, 2]), mask=MASK, seed=st.integers(0, 255))
def test_data_frames_round_trip(length: int, opcode: int, mask: bytes, seed: int) -> None:
    payload = bytes((seed + i) % 128 for i in range(length))  # ASCII: valid text too
    server = WebSocketConnection(max_message_size=1 << 20)
    events = server.receive_data(encode_frame(opcode, payload, mask=mask))
    expected: str | bytes = payload.decode() if opcode == 1 else payload
    assert events == [expected]


@SETTINGS
@given(payload=st.binary(max_size=125), mask=MASK)
def test_control_frames_round_trip(payload: bytes, mask: bytes) -> None:
    server = WebSocketConnection()
    assert server.receive_data(encode_frame(9, payload, mask=mask)) == [Ping(payload)]
    assert server.data_to_send() == encode_frame(10, payload)  # the pong, unmasked
    assert server.receive_data(encode_frame(10, payload, mask=mask)) == [Pong(payload)]


@SETTINGS
@given(code=st.sampled_from([1000, 1001, 1003, 1008, 3000, 4999]), reason=st.text(max_size=30))
def test_close_round_trip(code: int, reason: str) -> None:
    client = WebSocketConnection(client=True)
    server = WebSocketConnection()
    data = client.send_close(code, reason)
    assert server.receive_data(data) == [Closed(code, reason)]
    echo = server.data_to_send()
    assert client.receive_data(echo) == [Closed(code, "")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    server = WebSocketConnection(max_message_size=4096)
    for chunk in chunks:
        for event in server.receive_data(chunk):
            assert isinstance(event, str | bytes | Ping | Pong | Closed)
            if isinstance(event, Closed):
                assert is_valid_close_code(event.code) or event.code == 1005
    for event in server.receive_eof():
        assert event == Closed(1006, "")


@SETTINGS
@given(
    text=st.text(min_size=1, max_size=200),
    cuts=st.lists(st.integers(0, 1000), max_size=6),
    mask=MASK,
    tcp_split=st.integers(1, 50),
)
def test_fragmented_text_split_anywhere_decodes_identically(
    text: str, cuts: list[int], mask: bytes, tcp_split: int
) -> None:
    data = text.encode("utf-8")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)] or [b""]
    wire = b"".join(
        encode_frame(1 if i == 0 else 0, piece, fin=i == len(pieces) - 1, mask=mask)
        for i, piece in enumerate(pieces)
    )
    server = WebSocketConnection()
    events = []
    for start in range(0, len(wire), tcp_split):  # TCP may split anywhere too
        events += server.receive_data(wire[start : start + tcp_split])
    assert events == [text]


@settings(max_examples=400, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda op, payload, fin, mask, cut: encode_frame(op, payload, fin=fin, mask=mask)[
                : cut if cut else None
            ],
            st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11]),
            st.binary(max_size=300),
            st.booleans(),
            st.one_of(st.none(), MASK),
            st.integers(0, 320),
        ),
    ),
    pos=st.integers(0, 4),
    expect_mask=st.sampled_from([0, 0x80]),
    limit=st.integers(0, 400),
)
def test_c_and_python_frame_parsers_agree(
    data: bytes, pos: int, expect_mask: int, limit: int
) -> None:
    if not HAS_SPEEDUPS:
        return  # the fallback is what runs; the tests above cover it
    from roost.protocol._speedups import parse_frame as c_parse_frame

    expected = _parse_frame_python(data, pos, expect_mask, limit)
    assert c_parse_frame(data, pos, expect_mask, limit) == expected
    assert c_parse_frame(bytearray(data), pos, expect_mask, limit) == expected
