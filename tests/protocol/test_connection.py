"""roost.protocol.connection: the RFC 6455 state machine, fed bytes, asserting events and the
bytes it answers with. One class per concern, named after the RFC section it checks."""

from __future__ import annotations

import zlib

import pytest

from roost.protocol.connection import (
    DEFAULT_MAX_MESSAGE_SIZE,
    SharedMessage,
    State,
    WebSocketConnection,
)
from roost.protocol.deflate import Compression, DeflateParams, DeflateSettings, PerMessageDeflate
from roost.protocol.errors import InvalidState
from roost.protocol.events import Closed, Ping, Pong
from roost.protocol.frames import decode_close_payload
from tests.protocol.wire import MASK, close_payload, wire, xor

TAIL = b"\x00\x00\xff\xff"


def server(**kwargs: object) -> WebSocketConnection:
    return WebSocketConnection(**kwargs)  # type: ignore[arg-type]


def deflating(**kwargs: object) -> WebSocketConnection:
    return WebSocketConnection(deflate=PerMessageDeflate(DeflateParams()), **kwargs)  # type: ignore[arg-type]


def compressed(data: bytes) -> bytes:
    """One message's payload as a client compresses it (RFC 7692 section 7.2.1)."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def close_frame_sent(conn: WebSocketConnection) -> tuple[int, str]:
    """The close frame the connection queued: (code, reason); a client's is masked."""
    out = conn.data_to_send()
    assert out[0] == 0x88, out
    if conn.client:
        assert out[1] & 0x80 and out[1] & 0x7F == len(out) - 6, out
        return decode_close_payload(xor(out[6:], out[2:6]))
    assert out[1] == len(out) - 2, out
    return decode_close_payload(out[2:])


def failed_with(conn: WebSocketConnection, data: bytes, code: int, reason: str) -> None:
    """Feeding ``data`` fails the connection (section 7.1.7): Closed, then a close frame."""
    events = conn.receive_data(data)
    assert events[-1] == Closed(code, reason)
    assert conn.state is State.CLOSED and conn.closed
    assert (conn.close_code, conn.close_reason) == (code, reason)
    assert close_frame_sent(conn) == (code, reason)
    assert conn.receive_data(wire(1, b"after")) == []
    assert conn.receive_eof() == []


class TestDataFrames:
    """Section 5.6: text (UTF-8) and binary messages."""

    def test_single_frame_messages(self) -> None:
        conn = server()
        assert conn.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 1_048_576
        assert conn.receive_data(wire(1, "héllo".encode())) == ["héllo"]
        assert conn.receive_data(wire(2, b"\x00\xff")) == [b"\x00\xff"]
        assert conn.receive_data(wire(1, b"") + wire(2, b"")) == ["", b""]
        assert conn.data_to_send() == b""
        assert conn.state is State.OPEN and not conn.closed

    @pytest.mark.parametrize("n", [125, 126, 65535, 65536])
    def test_every_length_form(self, n: int) -> None:
        """Section 5.2: 7-bit, 16-bit and 64-bit payload lengths."""
        assert server().receive_data(wire(2, b"b" * n)) == [b"b" * n]
        assert server().receive_data(wire(1, b"t" * n)) == ["t" * n]

    def test_bytes_split_anywhere(self) -> None:
        """TCP delivers a stream: frames arrive in any pieces, several per read."""
        data = wire(1, "ünïcode".encode()) + wire(2, b"x" * 300) + wire(9, b"p") + wire(1, b"end")
        for size in (1, 2, 3, 7, 64):
            conn = server()
            events: list[object] = []
            for start in range(0, len(data), size):
                events += conn.receive_data(data[start : start + size])
            assert events == ["ünïcode", b"x" * 300, Ping(b"p"), "end"], size

    def test_leftover_bytes_wait_for_the_rest(self) -> None:
        conn = server()
        frame = wire(1, b"second")
        assert conn.receive_data(wire(1, b"first") + frame[:1]) == ["first"]
        assert conn.receive_data(frame[1:5]) == []
        assert conn.receive_data(b"") == []
        assert conn.receive_data(frame[5:] + wire(1, b"third")) == ["second", "third"]


class TestFragmentation:
    """Section 5.4: a message in several frames, control frames possibly between them."""

    def test_text_and_binary_in_fragments(self) -> None:
        conn = server()
        text = wire(1, b"he", fin=False) + wire(0, b"", fin=False) + wire(0, b"llo")
        binary = wire(2, b"\x01", fin=False) + wire(0, b"\x02")
        assert conn.receive_data(text + binary) == ["hello", b"\x01\x02"]

    def test_control_frames_between_fragments(self) -> None:
        """Section 5.4: control frames MAY be injected in the middle of a fragmented message."""
        conn = server()
        data = wire(1, b"Hel", fin=False) + wire(9, b"ping") + wire(10, b"pong") + wire(0, b"lo")
        assert conn.receive_data(data) == [Ping(b"ping"), Pong(b"pong"), "Hello"]
        assert conn.data_to_send() == wire(10, b"ping", mask=None)

    def test_multibyte_character_split_between_fragments(self) -> None:
        data = "κόσμε".encode()
        conn = server()
        events = conn.receive_data(wire(1, data[:1], fin=False))
        events += conn.receive_data(wire(0, data[1:4], fin=False))
        events += conn.receive_data(wire(0, data[4:]))
        assert events == ["κόσμε"]

    def test_continuation_without_a_message_is_1002(self) -> None:
        """Section 5.4: a continuation frame continues a message that was started."""
        failed_with(
            server(), wire(0, b"x"), 1002, "continuation frame without a message to continue"
        )

    @pytest.mark.parametrize(
        "second",
        [wire(1, b"b"), wire(2, b"b"), wire(1, b"b", fin=False), wire(2, b"b", fin=False)],
    )
    def test_new_message_before_the_end_is_1002(self, second: bytes) -> None:
        """Section 5.4: fragments of one message are not interleaved with another message."""
        failed_with(
            server(),
            wire(1, b"a", fin=False) + second,
            1002,
            "new message before the previous one ended",
        )

    def test_size_limit_counts_every_fragment(self) -> None:
        conn = server(max_message_size=10)
        assert conn.receive_data(wire(2, b"x" * 6, fin=False)) == []
        assert conn.receive_data(wire(0, b"x" * 4, fin=False)) == []
        failed_with(conn, wire(0, b"x"), 1009, "message over the size limit")

    def test_size_limit_resets_after_each_message(self) -> None:
        conn = server(max_message_size=10)
        data = wire(2, b"x" * 6, fin=False) + wire(0, b"x" * 4)
        assert conn.receive_data(data + data) == [b"x" * 10, b"x" * 10]

    def test_many_empty_fragments_cost_no_memory(self) -> None:
        """A message of a million empty continuation frames stays at its size in memory (one
        buffer), instead of one object per fragment."""
        import tracemalloc

        conn = server()
        assert conn.receive_data(wire(1, b"a", fin=False)) == []
        batch = wire(0, b"", fin=False) * 10_000
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(100):
                assert conn.receive_data(batch) == []
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 64 * 1024, grown
        assert conn.receive_data(wire(0, b"b")) == ["ab"]

    def test_fragmented_binary_and_text_are_joined_once(self) -> None:
        conn = server()
        pieces = [bytes([i]) * 3 for i in range(50)]
        data = wire(2, pieces[0], fin=False) + b"".join(wire(0, p, fin=False) for p in pieces[1:])
        assert conn.receive_data(data + wire(0, b"!")) == [b"".join(pieces) + b"!"]
        text = "ünïcödé ✓ " * 30
        raw = text.encode()
        data = wire(1, raw[:5], fin=False) + wire(0, raw[5:77], fin=False) + wire(0, raw[77:])
        assert conn.receive_data(data) == [text]


class TestParseLimit:
    """``receive_data(data, limit)``: at most ``limit`` messages per call; the rest waits."""

    def test_stops_after_limit_messages_and_resumes(self) -> None:
        conn = server()
        data = b"".join(wire(1, f"m{i}".encode()) for i in range(5)) + wire(9, b"p")
        assert conn.receive_data(data, 2) == ["m0", "m1"]
        assert conn.receive_data(b"", 0) == []
        assert conn.receive_data(b"", 1) == ["m2"]
        assert conn.receive_data(wire(2, b"late"), None) == ["m3", "m4", Ping(b"p"), b"late"]

    def test_compressed_messages_past_the_limit_are_not_inflated(self) -> None:
        """What waits is the wire bytes: a compression bomb behind the limit costs nothing."""
        import tracemalloc

        conn = deflating()
        one = wire(2, compressed(b"\x00" * 1_000_000), rsv=4)
        tracemalloc.start()
        try:
            messages = conn.receive_data(one * 200, 1)
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert messages == [b"\x00" * 1_000_000]
        assert held < 4 * 1_000_000, held  # the one message, and 199 compressed frames
        for _ in range(199):
            assert conn.receive_data(b"", 1) == [b"\x00" * 1_000_000]
        assert conn.receive_data(b"", 1) == []

    def test_fragments_and_control_frames_do_not_count(self) -> None:
        conn = server()
        data = wire(1, b"a", fin=False) + wire(9, b"p") + wire(0, b"b") + wire(1, b"c")
        assert conn.receive_data(data, 1) == [Ping(b"p"), "ab"]
        assert conn.receive_data(b"", 1) == ["c"]


class TestUtf8:
    """Section 8.1: a text message that is not valid UTF-8 fails the connection with 1007, as
    soon as the invalid bytes arrive (section 5.6: text is UTF-8)."""

    @pytest.mark.parametrize(
        "data", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]
    )
    def test_invalid_single_frame(self, data: bytes) -> None:
        failed_with(server(), wire(1, data), 1007, "text message is not valid UTF-8")

    def test_invalid_fragment_fails_before_the_message_ends(self) -> None:
        conn = server()
        assert conn.receive_data(wire(1, "κό".encode(), fin=False)) == []
        failed_with(
            conn, wire(0, b"\xed\xa0\x80", fin=False), 1007, "text message is not valid UTF-8"
        )

    def test_truncated_character_at_the_end_of_the_message(self) -> None:
        conn = server()
        assert conn.receive_data(wire(1, b"ok", fin=False)) == []
        failed_with(conn, wire(0, b"\xe2\x82"), 1007, "text message is not valid UTF-8")

    @pytest.mark.parametrize("n", [20, 200, 70_000])
    def test_invalid_bytes_fail_before_the_frame_is_complete(self, n: int) -> None:
        """The frame announces n bytes; the invalid byte comes early and the rest never."""
        conn = server()
        frame = wire(1, b"valid " + b"\xff" + b"x" * n)
        header = 2 + (2 if n > 119 else 0) + (6 if n > 65528 else 0) + 4
        assert conn.receive_data(frame[: header + 3]) == []  # "val" is fine so far
        failed_with(conn, frame[header + 3 : header + 9], 1007, "text message is not valid UTF-8")

    def test_partial_frame_checked_at_every_mask_offset(self) -> None:
        """The mask rotates with the position in the payload (section 5.3): a check that
        resumes mid-key must unmask from the right key byte."""
        text = "αβγδεζηθικλμνξοπρστυφχψω".encode()
        frame = wire(1, text)
        conn = server()
        for i in range(1, len(frame)):
            assert conn.receive_data(frame[i - 1 : i]) == []
            assert conn.receive_data(b"") == []  # nothing new to check
        assert conn.receive_data(frame[-1:]) == [text.decode()]

    def test_partial_continuation_is_checked_with_the_message_so_far(self) -> None:
        """A character split between a finished fragment and an unfinished one."""
        conn = server()
        assert conn.receive_data(wire(1, b"a\xce", fin=False)) == []
        frame = wire(0, b"\xba" + b"x" * 50)  # completes the "κ"
        assert conn.receive_data(frame[:8]) == []
        assert conn.receive_data(frame[8:]) == ["aκ" + "x" * 50]
        conn = server()
        assert conn.receive_data(wire(1, b"a\xce", fin=False)) == []
        failed_with(conn, wire(0, b"\x41" + b"x" * 50)[:8], 1007, "text message is not valid UTF-8")

    def test_client_side_partial_frames_are_checked_too(self) -> None:
        conn = server(client=True)
        frame = wire(1, b"abc\xff" + b"x" * 100, mask=None)
        assert conn.receive_data(frame[:2]) == []  # header only, nothing to check
        assert conn.receive_data(frame[2:5]) == []
        failed_with(conn, frame[5:8], 1007, "text message is not valid UTF-8")

    def test_not_checked_before_the_payload_or_for_other_frames(self) -> None:
        conn = server()
        assert conn.receive_data(wire(1, b"\xff" * 10)[:6]) == []  # header and mask only
        conn = server()
        assert conn.receive_data(wire(1, b"\xff" * 300)[:3]) == []  # length not complete
        conn = server()
        assert conn.receive_data(wire(2, b"\xff" * 100)[:50]) == []  # binary
        conn = server()
        assert conn.receive_data(wire(2, b"a", fin=False) + wire(0, b"\xff" * 50)[:20]) == []
        conn = server()
        assert conn.receive_data(wire(9, b"\xff" * 50)[:20]) == []  # ping payloads are bytes

    def test_compressed_text_is_checked_once_inflated(self) -> None:
        """RFC 7692: the payload on the wire is DEFLATE data, not UTF-8: an unfinished
        compressed frame is not checked, the inflated text is."""
        text = "compressed text ✓ " * 20
        data = compressed(text.encode())
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        conn = deflating()
        frame = wire(1, data, rsv=4)
        assert conn.receive_data(frame[:20]) == []
        assert conn.receive_data(frame[20:]) == [text]
        continuation = wire(0, data[5:])
        first = wire(1, data[:5], rsv=4, fin=False)
        assert conn.receive_data(first + continuation[:20]) == []
        assert conn.receive_data(continuation[20:]) == [text]
        failed_with(
            deflating(),
            wire(1, compressed(b"\xff\xfe" * 100), rsv=4),
            1007,
            "text message is not valid UTF-8",
        )


class TestControlFrames:
    """Section 5.5."""

    def test_ping_is_answered_with_the_same_payload(self) -> None:
        """Section 5.5.2 and 5.5.3: a pong with the ping's application data."""
        conn = server()
        assert conn.receive_data(wire(9, b"are you there")) == [Ping(b"are you there")]
        assert conn.data_to_send() == b"\x8a\x0dare you there"
        assert conn.data_to_send() == b""
        conn.receive_data(wire(9, b"1") + wire(9, b"2"))
        assert conn.data_to_send() == b"\x8a\x011\x8a\x012"

    def test_pong_is_reported(self) -> None:
        """Section 5.5.3: an unsolicited pong is allowed and needs no answer."""
        conn = server()
        assert conn.receive_data(wire(10, b"")) == [Pong(b"")]
        assert conn.data_to_send() == b""

    def test_client_answers_with_a_masked_pong(self) -> None:
        conn = server(client=True)
        assert conn.receive_data(wire(9, b"hi", mask=None)) == [Ping(b"hi")]
        out = conn.data_to_send()
        assert out[:2] == b"\x8a\x82" and xor(out[6:], out[2:6]) == b"hi"

    def test_control_frame_over_125_bytes_is_1002(self) -> None:
        failed_with(server(), wire(9, b"x" * 126), 1002, "control frame payload over 125 bytes")

    def test_fragmented_control_frame_is_1002(self) -> None:
        failed_with(server(), wire(9, b"x", fin=False), 1002, "fragmented control frame")

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    def test_reserved_opcode_is_1002(self, opcode: int) -> None:
        """Section 5.2: %x3-7 and %xB-F are reserved; section 10.7: unknown opcodes fail."""
        failed_with(server(), wire(opcode, b""), 1002, f"reserved opcode {opcode:#x}")


class TestReservedBits:
    """Section 5.2: RSV1-3 MUST be 0 unless an extension defines them; RFC 7692 section 6
    gives RSV1 to permessage-deflate, on the first frame of a data message only."""

    @pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
    def test_without_extension(self, rsv: int) -> None:
        failed_with(
            server(),
            wire(1, b"x", rsv=rsv),
            1002,
            "reserved bits set without a negotiated extension",
        )

    @pytest.mark.parametrize("rsv", [1, 2, 3, 5, 6])
    def test_rsv2_rsv3_with_deflate(self, rsv: int) -> None:
        failed_with(
            deflating(),
            wire(1, b"x", rsv=rsv),
            1002,
            "reserved bits set without a negotiated extension",
        )

    @pytest.mark.parametrize(
        "data",
        [
            wire(9, b"", rsv=4),
            wire(8, b"", rsv=4),
            wire(1, compressed(b"ab"), rsv=4, fin=False) + wire(0, b"", rsv=4),
        ],
        ids=["ping", "close", "continuation"],
    )
    def test_rsv1_outside_a_first_data_frame(self, data: bytes) -> None:
        failed_with(deflating(), data, 1002, "reserved bits set without a negotiated extension")


class TestMasking:
    """Section 5.1: client frames are masked, server frames are not; a violation fails the
    connection (1002)."""

    def test_server_refuses_an_unmasked_frame(self) -> None:
        failed_with(
            server(),
            wire(1, b"hi", mask=None),
            1002,
            "wrong mask bit: clients must mask, servers must not",
        )

    def test_client_refuses_a_masked_frame(self) -> None:
        conn = server(client=True)
        events = conn.receive_data(wire(1, b"hi"))
        assert events == [Closed(1002, "wrong mask bit: clients must mask, servers must not")]
        assert close_frame_sent(conn)[0] == 1002  # masked, as a client's frames are

    def test_server_frames_are_unmasked_client_frames_masked(self) -> None:
        assert server().send_text("Hello") == bytes.fromhex("810548656c6c6f")
        frames = {server(client=True).send_binary(b"Hello") for _ in range(4)}
        for out in frames:
            assert out[:2] == b"\x82\x85" and xor(out[6:], out[2:6]) == b"Hello"
        assert len({f[2:6] for f in frames}) > 1  # a fresh key per frame (section 5.3)


class TestSizeLimit:
    def test_refused_from_the_header_alone(self) -> None:
        """A frame announcing more than ``max_message_size`` is refused before its payload
        is buffered (1009, section 7.4.1)."""
        conn = server(max_message_size=1000)
        failed_with(conn, wire(2, b"x" * 100_000)[:14], 1009, "message over the size limit")

    def test_exactly_the_limit_is_accepted(self) -> None:
        assert server(max_message_size=5).receive_data(wire(1, b"12345")) == ["12345"]

    def test_inflated_size_counts(self) -> None:
        conn = deflating(max_message_size=1000)
        assert conn.receive_data(wire(2, compressed(b"\x00" * 1000), rsv=4)) == [b"\x00" * 1000]
        failed_with(
            conn,
            wire(2, compressed(b"\x00" * 1001), rsv=4),
            1009,
            "decompressed message is over the size limit",
        )


class TestCompressedMessages:
    """RFC 7692 section 6: RSV1 on the first frame marks a compressed message."""

    def test_text_and_binary(self) -> None:
        conn = deflating()
        data = wire(1, compressed("héllo".encode()), rsv=4) + wire(2, compressed(b"\x00"), rsv=4)
        assert conn.receive_data(data) == ["héllo", b"\x00"]
        assert conn.receive_data(wire(1, b"plain")) == ["plain"]  # RSV1 unset: not compressed

    def test_fragmented_compressed_message(self) -> None:
        """RFC 7692 section 6.1: RSV1 on the first frame only; the payloads concatenate."""
        conn = deflating()
        payload = compressed(b"fragmented " * 20)
        data = wire(1, payload[:7], rsv=4, fin=False) + wire(0, payload[7:20], fin=False)
        assert conn.receive_data(data + wire(0, payload[20:])) == ["fragmented " * 20]
        payload = compressed(bytes(range(256)))
        data = wire(2, payload[:3], rsv=4, fin=False) + wire(0, payload[3:])
        assert conn.receive_data(data) == [bytes(range(256))]

    def test_corrupt_data_is_1007(self) -> None:
        conn = deflating()
        events = conn.receive_data(wire(2, b"\xff\xff\xff", rsv=4))
        assert events[0].code == 1007  # type: ignore[union-attr]
        assert events[0].reason.startswith("invalid compressed data")  # type: ignore[union-attr]
        assert close_frame_sent(conn)[0] == 1007

    def test_bomb_is_1009(self) -> None:
        conn = deflating(max_message_size=65536)
        bomb = compressed(b"\x00" * 10_000_000)
        assert len(bomb) < 65536
        events = conn.receive_data(wire(2, bomb, rsv=4))
        assert events == [Closed(1009, "decompressed message is over the size limit")]

    def test_sent_messages_are_compressed(self) -> None:
        conn = deflating()
        out = conn.send_text("hello " * 50)
        assert out[0] == 0xC1 and len(out) < 100
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(out[2:] + TAIL) == b"hello " * 50
        out = conn.send_binary(b"\x01" * 300)
        assert out[0] == 0xC2
        assert inflater.decompress(out[2:] + TAIL) == b"\x01" * 300

    @pytest.mark.parametrize(
        "ending",
        ["peer closes", "we close, peer answers", "peer violates", "deferred violation", "eof"],
    )
    def test_codec_is_released_once_closed(self, ending: str) -> None:
        """The zlib state (hundreds of KB) must not live as long as the connection object."""
        conn = deflating(defer_failure=ending == "deferred violation")
        assert conn.receive_data(wire(1, compressed(b"hi"), rsv=4)) == ["hi"]
        if ending == "we close, peer answers":
            conn.send_close(1000)
            assert conn.deflate is not None  # CLOSING: messages in flight still decompress
            conn.receive_data(wire(8, close_payload(1000)))
        elif ending == "peer closes":
            conn.receive_data(wire(8, close_payload(1000)))
        elif ending == "peer violates":
            conn.receive_data(wire(1, b"unmasked", mask=None))
        elif ending == "deferred violation":
            conn.receive_data(wire(1, b"unmasked", mask=None))
            assert conn.failure is not None and conn.deflate is not None
            conn.fail(*conn.failure)
        else:
            conn.receive_eof()
        assert conn.state is State.CLOSED
        assert conn.deflate is None


class TestCompressionThreshold:
    """RFC 7692 section 6: compression is chosen message by message; roost sends messages
    shorter than the codec's threshold uncompressed (RSV1 unset)."""

    def test_short_messages_go_out_uncompressed(self) -> None:
        conn = deflating()
        assert conn.deflate is not None and conn.deflate.threshold == 256
        assert conn.send_text("x" * 255) == b"\x81\x7e\x00\xff" + b"x" * 255
        assert conn.send_binary(b"\x00" * 10) == b"\x82\x0a" + b"\x00" * 10
        assert conn.deflate.contexts == 0  # nothing was compressed, nothing was created
        out = conn.send_text("x" * 256)
        assert out[0] == 0xC1
        assert zlib.decompressobj(-15).decompress(out[2:] + TAIL) == b"x" * 256

    def test_threshold_counts_encoded_bytes(self) -> None:
        settings = DeflateSettings(compression_threshold=4)
        conn = server(deflate=PerMessageDeflate(DeflateParams(), settings))
        assert conn.send_text("é") == b"\x81\x02" + "é".encode()  # 2 bytes: under 4
        assert conn.send_text("éé")[0] == 0xC1  # 4 bytes

    def test_zero_compresses_everything(self) -> None:
        conn = server(
            deflate=PerMessageDeflate(DeflateParams(), DeflateSettings(compression_threshold=0))
        )
        assert conn.send_text("")[:3] == b"\xc1\x01\x00"


class TestSharedMessages:
    """A broadcast encodes its frame once, and compresses it once for all connections without
    server context takeover that share a deflater."""

    def test_plain_connections_share_the_frame(self) -> None:
        message = SharedMessage("hello")
        assert message.frame == b"\x81\x05hello"
        assert server().send_shared(message) is message.frame
        short = SharedMessage(b"\x01\x02")
        assert deflating().send_shared(short) is short.frame  # under the threshold

    def test_compressed_once_for_connections_without_context_takeover(self) -> None:
        compression = Compression()
        params = DeflateParams(True, True, 12, 12)
        conns = [server(deflate=compression.codec(params)) for _ in range(3)]
        message = SharedMessage("hello " * 100)
        frames = [conn.send_shared(message) for conn in conns]
        assert frames[0][0] == 0xC1 and frames[1] is frames[0] and frames[2] is frames[0]
        deflater = conns[0].deflate.shared_deflater  # type: ignore[union-attr]
        assert deflater is not None and deflater.messages == 1
        assert zlib.decompressobj(-12).decompress(frames[0][2:] + TAIL) == b"hello " * 100
        other = server(deflate=compression.codec(DeflateParams(True, True, 10, 12)))
        assert other.send_shared(message) is not frames[0]  # another window: compressed again
        assert other.deflate is not None and other.deflate.shared_deflater is not deflater
        binary = SharedMessage(b"\x07" * 300)
        assert conns[0].send_shared(binary)[0] == 0xC2
        assert deflater.messages == 2

    def test_connection_with_context_takeover_compresses_its_own(self) -> None:
        conn = deflating()
        message = SharedMessage("hello " * 100)
        out = conn.send_shared(message)
        assert out[0] == 0xC1 and conn.deflate is not None and conn.deflate.contexts == 1
        assert zlib.decompressobj(-15).decompress(out[2:] + TAIL) == b"hello " * 100

    def test_a_client_masks_its_own_frame(self) -> None:
        client = server(client=True)
        out = client.send_shared(SharedMessage("hi"))
        assert out[:2] == b"\x81\x82" and xor(out[6:], out[2:6]) == b"hi"

    def test_refused_once_closed(self) -> None:
        conn = server()
        conn.send_close()
        with pytest.raises(InvalidState):
            conn.send_shared(SharedMessage("late"))


class TestClosingHandshake:
    """Section 5.5.1 and 7: the close handshake, started by either side."""

    def test_peer_closes_first(self) -> None:
        """Section 5.5.1: the endpoint answers with a close frame, echoing the status code."""
        conn = server()
        events = conn.receive_data(wire(8, close_payload(1001, b"bye")) + wire(1, b"ignored"))
        assert events == [Closed(1001, "bye")]
        assert conn.data_to_send() == b"\x88\x02\x03\xe9"
        assert conn.state is State.CLOSED and conn.close_sent and conn.peer_closed_first
        assert (conn.close_code, conn.close_reason) == (1001, "bye")
        assert conn.receive_data(wire(1, b"later")) == []
        assert conn.receive_eof() == []
        assert conn.send_close() == b""

    def test_peer_closes_without_a_status(self) -> None:
        """Section 7.1.5: no status code means 1005; the reply carries none either."""
        conn = server()
        assert conn.receive_data(wire(8, b"")) == [Closed(1005, "")]
        assert conn.data_to_send() == b"\x88\x00"

    def test_messages_before_the_close_are_reported(self) -> None:
        conn = server()
        data = wire(1, b"last words") + wire(8, close_payload(1000))
        assert conn.receive_data(data) == ["last words", Closed(1000, "")]

    def test_we_close_first(self) -> None:
        """Section 7.1.2: after sending a close frame, wait for the peer's; section 5.5.1:
        send no more data frames."""
        conn = server()
        out = conn.send_close(4000, "done")
        assert out == b"\x88\x06\x0f\xa0done"
        assert conn.state is State.CLOSING and conn.close_sent and not conn.closed
        assert (conn.close_code, conn.close_reason) == (4000, "done")
        assert conn.send_close(1000) == b""  # idempotent
        with pytest.raises(InvalidState, match="cannot send: the connection is CLOSING"):
            conn.send_text("late")
        for send in (conn.send_binary, conn.send_ping, conn.send_pong):
            with pytest.raises(InvalidState):
                send(b"late")
        # Until the peer's close arrives, what it sent before seeing ours is still read
        # (section 1.4: only after *receiving* a close is data discarded); no pong is sent.
        events = conn.receive_data(wire(1, b"in flight") + wire(9, b"p"))
        assert events == ["in flight", Ping(b"p")]
        assert conn.receive_data(wire(2, b"a", fin=False) + wire(0, b"b")) == [b"ab"]
        assert conn.receive_data(wire(1, b"c", fin=False) + wire(0, b"d")) == ["cd"]
        assert conn.data_to_send() == b""
        assert conn.receive_data(wire(8, close_payload(4000))) == [Closed(4000, "")]
        assert conn.data_to_send() == b""  # no second close frame
        assert conn.state is State.CLOSED and not conn.peer_closed_first
        with pytest.raises(InvalidState, match="the connection is CLOSED"):
            conn.send_text("late")

    def test_close_without_a_status(self) -> None:
        assert server().send_close(1005) == b"\x88\x00"

    @pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 2999, 5000])
    def test_invalid_close_codes_are_refused_locally(self, code: int) -> None:
        """Local misuse raises; nothing is sent."""
        conn = server()
        with pytest.raises(ValueError, match=f"invalid close code {code}"):
            conn.send_close(code)
        assert conn.state is State.OPEN

    @pytest.mark.parametrize(
        ("payload", "code", "reason"),
        [
            (b"\x03", 1002, "close frame with a 1-byte payload"),
            (close_payload(1006), 1002, "invalid close code 1006"),
            (close_payload(1000, b"\xff"), 1007, "close reason is not valid UTF-8"),
        ],
    )
    def test_malformed_close_frames(self, payload: bytes, code: int, reason: str) -> None:
        """Section 7.1.6 and 7.4.1."""
        failed_with(server(), wire(8, payload), code, reason)

    def test_peer_error_while_closing_sends_no_second_close(self) -> None:
        conn = server(defer_failure=True)
        conn.send_close(1000)
        events = conn.receive_data(wire(1, b"\xff"))
        assert events == [Closed(1007, "text message is not valid UTF-8")]
        assert conn.state is State.CLOSED and conn.data_to_send() == b""
        assert conn.failure is None  # failing while CLOSING is never deferred

    def test_stream_ends_without_a_close(self) -> None:
        """Section 7.1.5: the connection closed abnormally, 1006."""
        conn = server()
        assert conn.receive_data(wire(1, b"x", fin=False)) == []
        assert conn.receive_eof() == [Closed(1006, "")]
        assert conn.state is State.CLOSED and conn.close_code == 1006
        assert not conn.peer_closed_first and not conn.close_sent
        assert conn.receive_eof() == []

    def test_client_side_handshake(self) -> None:
        client = WebSocketConnection(client=True)
        peer = server()
        events = peer.receive_data(client.send_close(1000, "bye"))
        assert events == [Closed(1000, "bye")]
        assert client.receive_data(peer.data_to_send()) == [Closed(1000, "")]
        assert client.state is State.CLOSED and client.data_to_send() == b""


class TestFail:
    """Section 7.1.7: fail the WebSocket connection: send a close frame with the code, then
    close; report Closed once."""

    def test_fail_an_open_connection(self) -> None:
        conn = server()
        assert conn.fail(1011, "keepalive ping timeout") == [Closed(1011, "keepalive ping timeout")]
        assert close_frame_sent(conn) == (1011, "keepalive ping timeout")
        assert conn.state is State.CLOSED
        assert conn.fail(1011) == []
        assert conn.data_to_send() == b""

    def test_fail_while_closing_sends_nothing_more(self) -> None:
        conn = server()
        conn.send_close(1000)
        assert conn.fail(1011, "close timeout") == [Closed(1011, "close timeout")]
        assert conn.data_to_send() == b"" and conn.state is State.CLOSED

    def test_long_reasons_are_cut_to_fit_the_frame(self) -> None:
        """Section 5.5: the close payload is at most 125 bytes; the reason is cut on a
        character boundary."""
        for reason in ["r" * 300, "é" * 100, "a" + "✓" * 60]:
            conn = server()
            assert conn.fail(1008, reason) == [Closed(1008, reason)]
            code, sent = close_frame_sent(conn)
            assert code == 1008 and reason.startswith(sent)
            assert 120 < len(sent.encode()) <= 123


class TestDeferredFailure:
    """``defer_failure=True``: the messages before a violation are answered first."""

    def test_failure_is_held_until_fail_is_called(self) -> None:
        conn = server(defer_failure=True)
        events = conn.receive_data(wire(1, b"first") + wire(1, b"x", rsv=4) + wire(1, b"lost"))
        reason = "reserved bits set without a negotiated extension"
        assert events == ["first", Closed(1002, reason)]
        assert conn.failure == (1002, reason) and conn.state is State.OPEN
        assert conn.data_to_send() == b""
        assert conn.send_text("reply to first") == wire(1, b"reply to first", mask=None)
        assert conn.receive_data(wire(1, b"more")) == []  # reading stopped
        assert conn.fail(*conn.failure) == [Closed(1002, reason)]
        assert close_frame_sent(conn) == (1002, reason)
        assert conn.state is State.CLOSED

    def test_stream_ends_before_fail(self) -> None:
        conn = server(defer_failure=True)
        assert conn.receive_data(wire(1, b"\xff"))[-1].code == 1007  # type: ignore[union-attr]
        assert conn.receive_eof() == []  # Closed was already reported
        assert conn.state is State.CLOSED and conn.close_code == 1007


class TestCoalescedPongs:
    """Section 5.5.3: an endpoint may answer only the most recent of the pings it has not
    answered yet; the owner asks for that while its peer is not reading."""

    def test_only_the_latest_ping_is_owed_a_pong(self) -> None:
        conn = server()
        conn.coalesce_pongs = True
        events = conn.receive_data(wire(9, b"one") + wire(9, b"two") + wire(1, b"text"))
        assert events == [Ping(b"one"), Ping(b"two"), "text"]
        assert conn.data_to_send() == b""
        assert conn.unanswered_ping == b"two"
        assert conn.pending_pong() == b"\x8a\x03two"
        assert conn.pending_pong() == b""  # answered once
        conn.coalesce_pongs = False
        conn.receive_data(wire(9, b"three"))
        assert conn.data_to_send() == b"\x8a\x05three"

    def test_no_pong_after_a_close(self) -> None:
        conn = server()
        conn.coalesce_pongs = True
        conn.receive_data(wire(9, b"late") + wire(8, close_payload(1000)))
        assert conn.data_to_send() == wire(8, close_payload(1000), mask=None)  # the echo only
        assert conn.pending_pong() == b""


class TestSending:
    def test_frames_for_each_kind(self) -> None:
        conn = server()
        assert conn.send_text("é") == b"\x81\x02\xc3\xa9"
        assert conn.send_binary(bytearray(b"\x00")) == b"\x82\x01\x00"
        assert conn.send_ping() == b"\x89\x00"
        assert conn.send_ping(b"x" * 125)[:2] == b"\x89\x7d"
        assert conn.send_pong(b"p") == b"\x8a\x01p"
        assert conn.send_text("t" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")

    @pytest.mark.parametrize("method", ["send_ping", "send_pong"])
    def test_control_payload_over_125_bytes_is_refused(self, method: str) -> None:
        """Section 5.5."""
        with pytest.raises(ValueError, match="payload is over 125 bytes"):
            getattr(server(), method)(b"x" * 126)

    def test_data_to_send_collects_the_automatic_replies(self) -> None:
        conn = server()
        conn.receive_data(wire(9, b"a"))
        conn.receive_data(wire(8, close_payload(1000)))
        assert conn.data_to_send() == b"\x8a\x01a\x88\x02\x03\xe8"


def test_mask_is_a_module_constant() -> None:
    """The fixed key of section 5.7's examples, used by ``wire``."""
    assert bytes.fromhex("37fa213d") == MASK
