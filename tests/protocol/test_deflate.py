"""roost.protocol.deflate: RFC 7692 permessage-deflate, negotiation and the message codec."""

from __future__ import annotations

import zlib

import pytest

from roost.protocol.deflate import (
    EXTENSION_NAME,
    DeflateParams,
    PerMessageDeflate,
    negotiate,
)
from roost.protocol.errors import ProtocolError

TAIL = b"\x00\x00\xff\xff"
# Section 7.2.3.1: "Hello" in one compressed DEFLATE block; section 7.2.3.2: the same message
# again, referring back to the first through the shared LZ77 window.
HELLO = bytes.fromhex("f248cdc9c90700")
HELLO_AGAIN = bytes.fromhex("f200110000")
# Section 7.2.3.3: "Hello" in a DEFLATE block with no compression.
HELLO_STORED = bytes.fromhex("000500faff48656c6c6f00")
# Section 7.2.3.4: "Hello" in a block with BFINAL set, then an empty block header.
HELLO_BFINAL = bytes.fromhex("f348cdc9c9070000")


def codec(**params: bool | int) -> PerMessageDeflate:
    return PerMessageDeflate(DeflateParams(**params))  # type: ignore[arg-type]


def inflate(data: bytes, wbits: int = 15) -> bytes:
    """An independent receiver (section 7.2.2): append 00 00 ff ff and inflate."""
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def finished(data: bytes) -> bytes:
    """``data`` compressed as one DEFLATE stream ended by a block with BFINAL set."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH)


def failure(call: object, *args: object, **kwargs: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


class TestNegotiation:
    """Section 7.1: the four extension parameters; section 5: the server accepts an offer or
    declines it, and a malformed offer is declined."""

    def test_plain_offer(self) -> None:
        assert EXTENSION_NAME == "permessage-deflate"
        assert negotiate(["permessage-deflate"]) == DeflateParams()
        assert negotiate(["  Permessage-Deflate  "]) == DeflateParams()

    def test_no_context_takeover_parameters(self) -> None:
        """Sections 7.1.1.1 and 7.1.1.2."""
        assert negotiate(["permessage-deflate; server_no_context_takeover"]) == DeflateParams(
            server_no_context_takeover=True
        )
        assert negotiate(["permessage-deflate;client_no_context_takeover"]) == DeflateParams(
            client_no_context_takeover=True
        )
        both = "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER ; client_no_context_takeover"
        assert negotiate([both]) == DeflateParams(True, True)

    @pytest.mark.parametrize("bits", range(9, 16))
    def test_server_max_window_bits(self, bits: int) -> None:
        """Section 7.1.2.1: a value from 8 to 15."""
        assert negotiate([f"permessage-deflate; server_max_window_bits={bits}"]) == (
            DeflateParams(server_max_window_bits=bits)
        )
        assert negotiate([f'permessage-deflate; server_max_window_bits="{bits}"']) == (
            DeflateParams(server_max_window_bits=bits)
        )

    def test_server_max_window_bits_8_is_declined(self) -> None:
        """zlib cannot write a raw DEFLATE stream with a 256-byte window; section 5.1 lets
        the server decline the offer rather than break its constraint."""
        assert negotiate(["permessage-deflate; server_max_window_bits=8"]) is None
        fallback = "permessage-deflate; server_max_window_bits=8, permessage-deflate"
        assert negotiate([fallback]) == DeflateParams()

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_client_max_window_bits_with_a_value(self, bits: int) -> None:
        """Section 7.1.2.2."""
        assert negotiate([f"permessage-deflate; client_max_window_bits = {bits}"]) == (
            DeflateParams(client_max_window_bits=bits)
        )

    def test_client_max_window_bits_without_a_value(self) -> None:
        """Section 7.1.2.2: the client merely supports the parameter; the server need not use
        it, and roost keeps 15."""
        assert negotiate(["permessage-deflate; client_max_window_bits"]) == DeflateParams()

    @pytest.mark.parametrize(
        "offer",
        [
            "permessage-deflate; x-unknown",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate;",
            "permessage-deflate; ; server_no_context_takeover",
            "permessage-deflate; =10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; server_max_window_bits=-9",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=x",
        ],
    )
    def test_malformed_offers_are_declined(self, offer: str) -> None:
        """Section 7.1: an offer with an unknown parameter, a repeated one, or an invalid
        value is declined."""
        assert negotiate([offer]) is None

    def test_first_acceptable_offer_wins(self) -> None:
        """Section 5: the client lists offers in order of preference."""
        values = [
            "x-webkit-deflate-frame, permessage-deflate; bogus",
            "permessage-deflate; client_max_window_bits=12, permessage-deflate",
        ]
        assert negotiate(values) == DeflateParams(client_max_window_bits=12)
        assert negotiate(["x-other", "foo; permessage-deflate"]) is None
        assert negotiate([]) is None

    @pytest.mark.parametrize(
        ("params", "header"),
        [
            (DeflateParams(), "permessage-deflate"),
            (
                DeflateParams(server_no_context_takeover=True),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                DeflateParams(client_no_context_takeover=True),
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                DeflateParams(server_max_window_bits=10),
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                DeflateParams(client_max_window_bits=9),
                "permessage-deflate; client_max_window_bits=9",
            ),
            (
                DeflateParams(True, True, 12, 11),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=12; client_max_window_bits=11",
            ),
        ],
    )
    def test_response_header(self, params: DeflateParams, header: str) -> None:
        """Section 7.1: the response names the agreed parameters; defaults are left out."""
        assert params.response_header() == header
        assert negotiate([header]) == params


class TestCompress:
    """Section 7.2.1: compress, flush with an empty stored block, drop its 00 00 ff ff."""

    def test_output_drops_the_tail_and_inflates_back(self) -> None:
        out = codec().compress(b"Hello")
        assert not out.endswith(TAIL)
        assert inflate(out) == b"Hello"

    def test_empty_message_is_a_single_zero_byte(self) -> None:
        """Section 7.2.3.6: an empty uncompressed block with its tail removed."""
        ours = codec()
        assert ours.compress(b"") == b"\x00"
        assert inflate(b"\x00") == b""

    def test_context_takeover_shares_the_window(self) -> None:
        """Section 7.2.3.2: later messages refer back to earlier ones."""
        ours = codec()
        first, second = ours.compress(b"Hello" * 20), ours.compress(b"Hello" * 20)
        assert len(second) < len(first)
        receiver = zlib.decompressobj(-15)
        assert receiver.decompress(first + TAIL) == b"Hello" * 20
        assert receiver.decompress(second + TAIL) == b"Hello" * 20

    def test_server_no_context_takeover_starts_each_message_afresh(self) -> None:
        """Section 7.1.1.1: every message inflates with an empty window."""
        ours = codec(server_no_context_takeover=True)
        first, second = ours.compress(b"Hello" * 20), ours.compress(b"Hello" * 20)
        assert first == second
        assert inflate(second) == b"Hello" * 20

    def test_server_max_window_bits_limits_the_window(self) -> None:
        """Section 7.1.2.1: the server's window is at most 2**bits bytes, so a receiver with
        that window inflates every message."""
        ours = codec(server_max_window_bits=9)
        data = bytes(range(256)) * 8
        receiver = zlib.decompressobj(-9)
        for _ in range(3):
            assert receiver.decompress(ours.compress(data) + TAIL) == data


class TestDecompress:
    """Section 7.2.2: append 00 00 ff ff to the payload and inflate."""

    def test_rfc_examples(self) -> None:
        ours = codec()
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"
        assert ours.decompress(HELLO_AGAIN, final=True, max_size=100) == b"Hello"
        assert ours.decompress(HELLO_STORED, final=True, max_size=100) == b"Hello"

    def test_message_in_two_deflate_blocks_and_two_frames(self) -> None:
        """Section 7.2.3.5 (two blocks); section 6.1: the payload of a fragmented message is
        the concatenation of its frames' payloads."""
        sender = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        payload = sender.compress(b"He") + sender.flush(zlib.Z_SYNC_FLUSH)
        payload += sender.compress(b"llo") + sender.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]
        ours = codec()
        half = len(payload) // 2
        out = ours.decompress(payload[:half], final=False, max_size=5)
        out += ours.decompress(payload[half:], final=True, max_size=5 - len(out))
        assert out == b"Hello"

    def test_client_no_context_takeover_resets_the_window(self) -> None:
        """Section 7.1.1.2: the client agreed not to refer back, so a message that does is
        corrupt (1007)."""
        ours = codec(client_no_context_takeover=True)
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"
        exc = failure(ours.decompress, HELLO_AGAIN, final=True, max_size=100)
        assert exc.code == 1007 and exc.reason.startswith("invalid compressed data")
        assert codec().decompress(HELLO, final=True, max_size=100) == b"Hello"

    def test_block_with_bfinal_set(self) -> None:
        """Section 7.2.3.4: a sender may end a message with a block that has BFINAL set; the
        extra empty-block header makes the appended tail inflate as usual. The next message
        is still decoded."""
        ours = codec()
        assert ours.decompress(HELLO_BFINAL, final=True, max_size=100) == b"Hello"
        assert ours.decompress(HELLO_BFINAL, final=True, max_size=100) == b"Hello"
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"

    def test_streams_each_ended_by_bfinal(self) -> None:
        """Senders that finish every message (zlib's Z_FINISH) and restart: no message is
        lost after the first one."""
        ours = codec()
        for text in [b"first message", b"second message", b"", b"fourth"]:
            assert ours.decompress(finished(text), final=True, max_size=100) == text

    def test_bfinal_stream_split_across_frames(self) -> None:
        ours = codec()
        data = finished(b"fragmented")
        assert ours.decompress(data, final=False, max_size=100) == b"fragmented"
        assert ours.decompress(b"", final=True, max_size=90) == b""
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"
        first, second = finished(b"one"), finished(b"two")
        assert ours.decompress(first, final=False, max_size=100) == b"one"
        assert ours.decompress(second, final=True, max_size=97) == b"two"
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"

    def test_garbage_after_a_bfinal_block_is_1007(self) -> None:
        exc = failure(codec().decompress, finished(b"x") + b"\xff\xff", final=True, max_size=9)
        assert exc.code == 1007

    def test_size_limit_is_exact(self) -> None:
        assert codec().decompress(HELLO, final=True, max_size=5) == b"Hello"
        exc = failure(codec().decompress, HELLO, final=True, max_size=4)
        assert (exc.code, exc.reason) == (1009, "decompressed message is over the size limit")
        assert codec().decompress(HELLO_BFINAL, final=True, max_size=5) == b"Hello"
        assert failure(codec().decompress, HELLO_BFINAL, final=True, max_size=4).code == 1009

    def test_bomb_is_stopped_before_it_is_inflated(self) -> None:
        """Section 8.1 of RFC 6455 lets the endpoint close with 1009 for a message too big to
        process; the output is bounded by the limit, not by the ratio."""
        sender = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = sender.compress(b"\x00" * 20_000_000) + sender.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 30_000
        exc = failure(codec().decompress, bomb[:-4], final=True, max_size=1_000_000)
        assert exc.code == 1009
        exc = failure(codec().decompress, finished(b"\x00" * 1_000_000), final=True, max_size=1000)
        assert exc.code == 1009

    def test_bomb_over_several_frames(self) -> None:
        sender = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = sender.compress(b"\x00" * 600) + sender.flush(zlib.Z_SYNC_FLUSH)
        ours = codec()
        assert len(ours.decompress(chunk, final=False, max_size=1000)) == 600
        assert failure(ours.decompress, chunk, final=False, max_size=400).code == 1009

    @pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"\x07\x00", b"\x00\x01\x00\x00\x00"])
    def test_corrupt_stream_is_1007(self, data: bytes) -> None:
        """Section 8.1 of RFC 6455 by analogy: data that cannot be decoded fails with 1007."""
        exc = failure(codec().decompress, data, final=True, max_size=100)
        assert exc.code == 1007 and exc.reason.startswith("invalid compressed data: ")

    def test_larger_client_window_than_agreed_still_inflates(self) -> None:
        """A 9-bit decoder window at least, whatever client_max_window_bits says (zlib has no
        8-bit raw decoder); a window larger than the encoder's decodes its stream."""
        sender = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -9)
        data = bytes(range(256)) * 4
        payload = (sender.compress(data) + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]
        ours = codec(client_max_window_bits=8)
        assert ours.decompress(payload, final=True, max_size=len(data)) == data
