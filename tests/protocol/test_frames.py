"""roost.protocol.frames: RFC 6455 section 5 (framing, masking) and section 7.4 (close codes).

Parsing tests run against both ``parse_frame`` implementations (see ``wire.IMPLEMENTATIONS``).
"""

from __future__ import annotations

import struct

import pytest

from roost.protocol.errors import ProtocolError
from roost.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    MAX_CONTROL_PAYLOAD,
    VIOLATIONS,
    CloseCode,
    Opcode,
    decode_close_payload,
    encode_close_payload,
    encode_frame,
    is_valid_close_code,
)
from tests.protocol.wire import IMPLEMENTATIONS, MASK, Impl, close_payload, wire

# Section 5.7's examples, byte for byte.
HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HEL_FIRST_FRAGMENT = bytes.fromhex("010348656c")
LO_LAST_FRAGMENT = bytes.fromhex("80026c6f")
PING_HELLO_UNMASKED = bytes.fromhex("890548656c6c6f")
PONG_HELLO_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")


class TestOpcodesAndCloseCodes:
    def test_opcode_values(self) -> None:
        """Section 5.2: %x0 continuation, %x1 text, %x2 binary, %x8 close, %x9 ping, %xA pong."""
        assert [int(o) for o in Opcode] == [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
        assert {0, 1, 2} == DATA_OPCODES
        assert {8, 9, 10} == CONTROL_OPCODES
        assert MAX_CONTROL_PAYLOAD == 125

    def test_close_code_values(self) -> None:
        """Section 7.4.1 and the IANA registry (1012-1014)."""
        assert [int(c) for c in CloseCode] == [1000, 1001, 1002, 1003, *list(range(1005, 1015))]

    @pytest.mark.parametrize(
        "code",
        [
            1000,
            1001,
            1002,
            1003,
            1007,
            1008,
            1009,
            1010,
            1011,
            1012,
            1013,
            1014,
            3000,
            3999,
            4000,
            4999,
        ],
    )
    def test_sendable_codes(self, code: int) -> None:
        assert is_valid_close_code(code)

    @pytest.mark.parametrize(
        "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 65535]
    )
    def test_codes_never_on_the_wire(self, code: int) -> None:
        """Section 7.4.1: 1004 is reserved; 1005, 1006 and 1015 MUST NOT be set in a close
        frame; 0-999 are unused; 1016-2999 are for the protocol's extensions, not in use."""
        assert not is_valid_close_code(code)


class TestEncodeFrame:
    def test_rfc_examples(self) -> None:
        """Section 5.7: a single-frame text message, unmasked and masked; a fragmented one;
        an unmasked ping and a masked pong."""
        assert encode_frame(Opcode.TEXT, b"Hello") == HELLO_UNMASKED
        assert encode_frame(Opcode.TEXT, b"Hello", mask=MASK) == HELLO_MASKED
        assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == HEL_FIRST_FRAGMENT
        assert encode_frame(Opcode.CONTINUATION, b"lo") == LO_LAST_FRAGMENT
        assert encode_frame(Opcode.PING, b"Hello") == PING_HELLO_UNMASKED
        assert encode_frame(Opcode.PONG, b"Hello", mask=MASK) == PONG_HELLO_MASKED

    def test_rfc_examples_of_long_lengths(self) -> None:
        """Section 5.7: 256 bytes take a 16-bit length, 64 KiB a 64-bit one."""
        assert encode_frame(2, b"\x00" * 256)[:4] == bytes.fromhex("827e0100")
        assert encode_frame(2, b"\x00" * 65536)[:10] == bytes.fromhex("827f0000000000010000")

    @pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
    @pytest.mark.parametrize("mask", [None, MASK])
    def test_length_forms_at_their_boundaries(self, n: int, mask: bytes | None) -> None:
        """Section 5.2: 0-125 in 7 bits, up to 65535 in 16 bits, beyond in 64 bits, always
        the minimal form."""
        payload = bytes(i % 251 for i in range(n))
        assert encode_frame(2, payload, mask=mask) == wire(2, payload, mask=mask)

    def test_rsv1_and_fin_bits(self) -> None:
        assert encode_frame(1, b"x", rsv1=True)[0] == 0xC1
        assert encode_frame(1, b"x", rsv1=True, fin=False)[0] == 0x41
        assert encode_frame(0, b"x", fin=False)[0] == 0x00


class TestClosePayload:
    def test_encode(self) -> None:
        """Section 5.5.1: the code in network byte order, then the UTF-8 reason."""
        assert encode_close_payload(1000) == b"\x03\xe8"
        assert encode_close_payload(4000, "héllo") == b"\x0f\xa0" + "héllo".encode()
        assert encode_close_payload(CloseCode.NO_STATUS, "ignored") == b""

    def test_encode_refuses_a_reason_over_the_control_frame_limit(self) -> None:
        """Section 5.5: a control frame payload is at most 125 bytes: 2 for the code, 123 for
        the reason."""
        assert len(encode_close_payload(1000, "a" * 123)) == 125
        with pytest.raises(ValueError, match="at most 123 bytes"):
            encode_close_payload(1000, "a" * 124)
        with pytest.raises(ValueError, match="at most 123 bytes"):
            encode_close_payload(1000, "é" * 62)  # 124 bytes of UTF-8

    def test_decode(self) -> None:
        assert decode_close_payload(b"") == (1005, "")
        assert decode_close_payload(close_payload(1000)) == (1000, "")
        assert decode_close_payload(close_payload(4999, "ça".encode())) == (4999, "ça")

    def test_one_byte_payload_is_1002(self) -> None:
        """Section 5.5.1: a body, when present, starts with a 2-byte code."""
        with pytest.raises(ProtocolError) as info:
            decode_close_payload(b"\x03")
        assert (info.value.code, info.value.reason) == (1002, "close frame with a 1-byte payload")

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000])
    def test_invalid_code_is_1002(self, code: int) -> None:
        """Section 7.4.1: codes that must not appear in a close frame fail the connection."""
        with pytest.raises(ProtocolError) as info:
            decode_close_payload(close_payload(code))
        assert (info.value.code, info.value.reason) == (1002, f"invalid close code {code}")

    def test_reason_that_is_not_utf8_is_1007(self) -> None:
        """Section 5.5.1: the reason is UTF-8; section 8.1: invalid UTF-8 fails with 1007."""
        with pytest.raises(ProtocolError) as info:
            decode_close_payload(close_payload(1000, b"\xff"))
        assert (info.value.code, info.value.reason) == (1007, "close reason is not valid UTF-8")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
class TestParseFrame:
    """``parse_frame(buf, pos, expect_mask, limit)``: None, a violation number, or
    ``(first header byte, unmasked payload, end position)``."""

    def test_rfc_examples(self, impl: Impl) -> None:
        assert impl.parse_frame(HELLO_MASKED, 0, 0x80, 100) == (0x81, b"Hello", 11)
        assert impl.parse_frame(HELLO_UNMASKED, 0, 0, 100) == (0x81, b"Hello", 7)
        assert impl.parse_frame(HEL_FIRST_FRAGMENT, 0, 0, 100) == (0x01, b"Hel", 5)
        assert impl.parse_frame(LO_LAST_FRAGMENT, 0, 0, 100) == (0x80, b"lo", 4)
        assert impl.parse_frame(PONG_HELLO_MASKED, 0, 0x80, 0) == (0x8A, b"Hello", 11)

    @pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536])
    @pytest.mark.parametrize("mask", [None, MASK])
    def test_every_prefix_is_incomplete(self, impl: Impl, n: int, mask: bytes | None) -> None:
        """The 7-, 16- and 64-bit length forms (section 5.2), masked or not: a frame is
        reported only once all of it arrived."""
        payload = bytes(i % 256 for i in range(n))
        data = wire(2, payload, mask=mask)
        expect = 0x80 if mask else 0
        assert impl.parse_frame(data, 0, expect, 1 << 20) == (0x82, payload, len(data))
        cuts = set(range(min(len(data), 20))) | {len(data) - 1, len(data) // 2}
        for cut in sorted(cuts):
            assert impl.parse_frame(data[:cut], 0, expect, 1 << 20) is None, cut

    def test_frames_back_to_back_from_any_position(self, impl: Impl) -> None:
        data = b"junk" + wire(1, b"one") + wire(2, b"two" * 50) + wire(9, b"")
        first = impl.parse_frame(data, 4, 0x80, 1000)
        assert first == (0x81, b"one", 4 + 9)
        second = impl.parse_frame(data, 13, 0x80, 1000)
        assert second == (0x82, b"two" * 50, 13 + 158)
        assert impl.parse_frame(data, 171, 0x80, 1000) == (0x89, b"", len(data))
        assert impl.parse_frame(data, len(data), 0x80, 1000) is None

    def test_accepts_a_bytearray(self, impl: Impl) -> None:
        assert impl.parse_frame(bytearray(HELLO_MASKED), 0, 0x80, 100) == (0x81, b"Hello", 11)

    @pytest.mark.parametrize("rsv", range(8))
    def test_first_byte_is_returned_as_is(self, impl: Impl, rsv: int) -> None:
        """FIN, RSV1-3 and the opcode are the caller's to judge (section 5.2)."""
        for opcode, fin in [(1, True), (0, False), (3, True), (0xB, True)]:
            data = wire(opcode, b"ab", fin=fin, rsv=rsv)
            b0 = (0x80 if fin else 0) | rsv << 4 | opcode
            assert impl.parse_frame(data, 0, 0x80, 10) == (b0, b"ab", len(data))

    def test_mask_bit_must_match_the_side(self, impl: Impl) -> None:
        """Section 5.1: a server closes on an unmasked client frame, a client on a masked
        server frame. Reported from the 2-byte header, before the payload."""
        assert impl.parse_frame(wire(1, b"hi", mask=None), 0, 0x80, 10) == 1
        assert impl.parse_frame(wire(1, b"hi", mask=MASK), 0, 0, 10) == 1
        assert impl.parse_frame(b"\x81\x05", 0, 0x80, 10) == 1
        assert impl.parse_frame(b"\x81\x85", 0, 0, 10) == 1
        assert VIOLATIONS[1][0] == 1002

    @pytest.mark.parametrize("opcode", [8, 9, 10, 0xB, 0xF])
    def test_control_frame_over_125_bytes(self, impl: Impl, opcode: int) -> None:
        """Section 5.5: all control frames MUST have a payload length of 125 bytes or less."""
        assert impl.parse_frame(wire(opcode, b"x" * 125), 0, 0x80, 0)[0] == 0x80 | opcode  # type: ignore[index]
        assert impl.parse_frame(wire(opcode, b"x" * 126), 0, 0x80, 1000) == 2
        assert impl.parse_frame(wire(opcode, b"x" * 126)[:4], 0, 0x80, 1000) == 2
        assert impl.parse_frame(wire(opcode, b"x" * 70000)[:10], 0, 0x80, 1 << 20) == 2
        assert VIOLATIONS[2][0] == 1002

    @pytest.mark.parametrize("opcode", [8, 9, 10])
    def test_fragmented_control_frame(self, impl: Impl, opcode: int) -> None:
        """Section 5.5: control frames MUST NOT be fragmented."""
        assert impl.parse_frame(wire(opcode, b"x", fin=False), 0, 0x80, 10) == 3
        assert impl.parse_frame(wire(opcode, b"x", fin=False)[:2], 0, 0x80, 10) == 3
        assert VIOLATIONS[3][0] == 1002

    def test_64_bit_length_with_the_high_bit_set(self, impl: Impl) -> None:
        """Section 5.2: in the 64-bit form the most significant bit MUST be 0. Reported before
        the mask bit is looked at."""
        header = b"\x82\xff" + struct.pack("!Q", 1 << 63)
        assert impl.parse_frame(header, 0, 0x80, 1 << 20) == 4
        assert impl.parse_frame(b"\x82\x7f" + struct.pack("!Q", 1 << 63), 0, 0x80, 10) == 4
        assert impl.parse_frame(header[:9], 0, 0x80, 1 << 20) is None
        assert VIOLATIONS[4][0] == 1002

    @pytest.mark.parametrize("opcode", [0, 1, 2, 3])
    def test_data_frame_over_the_limit(self, impl: Impl, opcode: int) -> None:
        """A data frame longer than ``limit`` is refused from its header (1009, section 7.4.1)."""
        assert impl.parse_frame(wire(opcode, b"x" * 100), 0, 0x80, 100) is not None
        assert impl.parse_frame(wire(opcode, b"x" * 101), 0, 0x80, 100) == 5
        assert impl.parse_frame(wire(opcode, b"x" * 100_000)[:14], 0, 0x80, 65536) == 5
        assert impl.parse_frame(wire(opcode, b"x" * 300)[:4], 0, 0x80, 200) == 5
        assert impl.parse_frame(wire(opcode, b""), 0, 0x80, 0) == (0x80 | opcode, b"", 6)
        assert VIOLATIONS[5] == (1009, "message over the size limit")

    def test_control_frames_ignore_the_data_limit(self, impl: Impl) -> None:
        assert impl.parse_frame(wire(9, b"p" * 125), 0, 0x80, 0) == (0x89, b"p" * 125, 131)
