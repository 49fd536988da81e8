"""Property tests on the sans-I/O core: round-trips, robustness, fragmentation.

Each property runs against both frame-parser implementations (``wire.IMPLEMENTATIONS``): the
pure-Python fallback in every run, the C accelerator where it is built and not disabled with
ROOST_NO_EXTENSIONS. The comparison of the two needs both, and says so when it is skipped.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.protocol.connection import WebSocketConnection
from roost.protocol.events import Closed, Ping, Pong
from roost.protocol.frames import encode_frame, is_valid_close_code
from tests.protocol.wire import (
    C_OR_REASON,
    IMPLEMENTATIONS,
    PYTHON,
    Impl,
    frames_implementation,
    wire,
)

SETTINGS = settings(max_examples=150, deadline=None)
MASK = st.binary(min_size=4, max_size=4)
LENGTHS = st.one_of(st.integers(0, 125), st.integers(126, 65535), st.integers(65536, 70000))

BOTH = pytest.mark.parametrize("impl", IMPLEMENTATIONS)


@BOTH
@SETTINGS
@given(
    opcode=st.sampled_from([0, 1, 2, 8, 9, 10]),
    payload=st.binary(max_size=300),
    fin=st.booleans(),
    rsv=st.integers(0, 7),
    mask=st.one_of(st.none(), MASK),
)
def test_parser_reads_any_well_formed_frame(
    impl: Impl, opcode: int, payload: bytes, fin: bool, rsv: int, mask: bytes | None
) -> None:
    """Section 5.2, with frames built by hand: the parser returns the first byte and the
    unmasked payload, and None for every proper prefix."""
    if opcode >= 8:
        payload, fin = payload[:125], True
    data = wire(opcode, payload, fin=fin, rsv=rsv, mask=mask)
    expect = 0x80 if mask is not None else 0
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    assert impl.parse_frame(b"xx" + data + b"yy", 2, expect, 300) == (b0, payload, len(data) + 2)
    for cut in range(len(data)):
        assert impl.parse_frame(data[:cut], 0, expect, 300) is None


@BOTH
@SETTINGS
@given(length=LENGTHS, opcode=st.sampled_from([1, 2]), mask=MASK, seed=st.integers(0, 255))
def test_data_frames_round_trip(
    impl: Impl, length: int, opcode: int, mask: bytes, seed: int
) -> None:
    payload = bytes((seed + i) % 128 for i in range(length))  # ASCII: valid text too
    with frames_implementation(impl):
        server = WebSocketConnection(max_message_size=1 << 20)
        events = server.receive_data(encode_frame(opcode, payload, mask=mask))
    expected: str | bytes = payload.decode() if opcode == 1 else payload
    assert events == [expected]


@BOTH
@SETTINGS
@given(payload=st.binary(max_size=125), mask=MASK)
def test_control_frames_round_trip(impl: Impl, payload: bytes, mask: bytes) -> None:
    with frames_implementation(impl):
        server = WebSocketConnection()
        assert server.receive_data(encode_frame(9, payload, mask=mask)) == [Ping(payload)]
        assert server.data_to_send() == encode_frame(10, payload)  # the pong, unmasked
        assert server.receive_data(encode_frame(10, payload, mask=mask)) == [Pong(payload)]


@BOTH
@SETTINGS
@given(code=st.sampled_from([1000, 1001, 1003, 1008, 3000, 4999]), reason=st.text(max_size=30))
def test_close_round_trip(impl: Impl, code: int, reason: str) -> None:
    with frames_implementation(impl):
        client = WebSocketConnection(client=True)
        server = WebSocketConnection()
        data = client.send_close(code, reason)
        assert server.receive_data(data) == [Closed(code, reason)]
        echo = server.data_to_send()
        assert client.receive_data(echo) == [Closed(code, "")]


@BOTH
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_never_raise(impl: Impl, chunks: list[bytes]) -> None:
    with frames_implementation(impl):
        server = WebSocketConnection(max_message_size=4096)
        for chunk in chunks:
            for event in server.receive_data(chunk):
                assert isinstance(event, str | bytes | Ping | Pong | Closed)
                if isinstance(event, Closed):
                    assert is_valid_close_code(event.code) or event.code == 1005
        for event in server.receive_eof():
            assert event == Closed(1006, "")


@BOTH
@SETTINGS
@given(
    text=st.text(min_size=1, max_size=200),
    cuts=st.lists(st.integers(0, 1000), max_size=6),
    mask=MASK,
    tcp_split=st.integers(1, 50),
)
def test_fragmented_text_split_anywhere_decodes_identically(
    impl: Impl, text: str, cuts: list[int], mask: bytes, tcp_split: int
) -> None:
    data = text.encode("utf-8")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)] or [b""]
    wire_bytes = b"".join(
        encode_frame(1 if i == 0 else 0, piece, fin=i == len(pieces) - 1, mask=mask)
        for i, piece in enumerate(pieces)
    )
    with frames_implementation(impl):
        server = WebSocketConnection()
        events = []
        for start in range(0, len(wire_bytes), tcp_split):  # TCP may split anywhere too
            events += server.receive_data(wire_bytes[start : start + tcp_split])
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
    """The C parser gives what the Python one gives, on bytes and on bytearrays."""
    if not isinstance(C_OR_REASON, Impl):
        pytest.skip(f"needs the C accelerator: {C_OR_REASON}")
    expected = PYTHON.parse_frame(data, pos, expect_mask, limit)
    assert C_OR_REASON.parse_frame(data, pos, expect_mask, limit) == expected
    assert C_OR_REASON.parse_frame(bytearray(data), pos, expect_mask, limit) == expected
