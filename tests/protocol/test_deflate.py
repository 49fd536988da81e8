"""roost.protocol.deflate: RFC 7692 permessage-deflate, negotiation and the message codec."""

from __future__ import annotations

import zlib

import pytest

from roost.protocol.deflate import (
    DEFAULT_SETTINGS,
    EXTENSION_NAME,
    Compression,
    DeflateParams,
    DeflateSettings,
    MessageDeflater,
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


# Settings under which the server takes each offer as it is (RFC 7692's own behaviour).
PLAIN = DeflateSettings(
    server_no_context_takeover=False,
    client_no_context_takeover=False,
    server_max_window_bits=15,
    client_max_window_bits=15,
    compression_threshold=0,
)


def plain(values: list[str]) -> DeflateParams | None:
    return negotiate(values, PLAIN)


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
        assert plain(["permessage-deflate"]) == DeflateParams()
        assert plain(["  Permessage-Deflate  "]) == DeflateParams()

    def test_no_context_takeover_parameters(self) -> None:
        """Sections 7.1.1.1 and 7.1.1.2."""
        assert plain(["permessage-deflate; server_no_context_takeover"]) == DeflateParams(
            server_no_context_takeover=True
        )
        assert plain(["permessage-deflate;client_no_context_takeover"]) == DeflateParams(
            client_no_context_takeover=True
        )
        both = "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER ; client_no_context_takeover"
        assert plain([both]) == DeflateParams(True, True)

    @pytest.mark.parametrize("bits", range(9, 16))
    def test_server_max_window_bits(self, bits: int) -> None:
        """Section 7.1.2.1: a value from 8 to 15."""
        assert plain([f"permessage-deflate; server_max_window_bits={bits}"]) == (
            DeflateParams(server_max_window_bits=bits)
        )
        assert plain([f'permessage-deflate; server_max_window_bits="{bits}"']) == (
            DeflateParams(server_max_window_bits=bits)
        )

    def test_server_max_window_bits_8_is_declined(self) -> None:
        """zlib cannot write a raw DEFLATE stream with a 256-byte window; section 5.1 lets
        the server decline the offer rather than break its constraint."""
        assert plain(["permessage-deflate; server_max_window_bits=8"]) is None
        fallback = "permessage-deflate; server_max_window_bits=8, permessage-deflate"
        assert plain([fallback]) == DeflateParams()

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_client_max_window_bits_with_a_value(self, bits: int) -> None:
        """Section 7.1.2.2."""
        assert plain([f"permessage-deflate; client_max_window_bits = {bits}"]) == (
            DeflateParams(client_max_window_bits=bits)
        )

    def test_client_max_window_bits_without_a_value(self) -> None:
        """Section 7.1.2.2: the client merely supports the parameter; the server need not use
        it, and roost keeps 15."""
        assert plain(["permessage-deflate; client_max_window_bits"]) == DeflateParams()

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
        assert plain([offer]) is None

    def test_first_acceptable_offer_wins(self) -> None:
        """Section 5: the client lists offers in order of preference."""
        values = [
            "x-webkit-deflate-frame, permessage-deflate; bogus",
            "permessage-deflate; client_max_window_bits=12, permessage-deflate",
        ]
        assert plain(values) == DeflateParams(client_max_window_bits=12)
        assert plain(["x-other", "foo; permessage-deflate"]) is None
        assert plain([]) is None

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
        assert plain([header]) == params


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


class TestSettings:
    """The server's side of the negotiation and its compressor: defaults and validation."""

    def test_defaults(self) -> None:
        assert (
            DeflateSettings(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=12,
                client_max_window_bits=12,
                compression_level=6,
                compression_mem_level=5,
                compression_threshold=256,
            )
            == DEFAULT_SETTINGS
        )

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("server_no_context_takeover", 1, "server_no_context_takeover must be True or False"),
            ("client_no_context_takeover", None, "client_no_context_takeover must be True or"),
            ("server_max_window_bits", 8, "server_max_window_bits must be an integer from 9 to 15"),
            ("server_max_window_bits", 16, "server_max_window_bits must be an integer from 9 to"),
            ("server_max_window_bits", "12", "server_max_window_bits must be an integer from 9"),
            ("client_max_window_bits", 8, "client_max_window_bits must be an integer from 9 to 15"),
            ("client_max_window_bits", True, "client_max_window_bits must be an integer from 9"),
            ("compression_level", 0, "compression_level must be an integer from 1 to 9, not 0"),
            ("compression_level", 10, "compression_level must be an integer from 1 to 9"),
            ("compression_mem_level", 0, "compression_mem_level must be an integer from 1 to 9"),
            ("compression_mem_level", 9.0, "compression_mem_level must be an integer from 1 to 9"),
            ("compression_threshold", -1, "compression_threshold must be an integer of at least 0"),
            ("compression_threshold", 1.5, "compression_threshold must be an integer of at least"),
        ],
    )
    def test_invalid_values_are_refused(self, name: str, value: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            DeflateSettings(**{name: value})  # type: ignore[arg-type]


class TestNegotiationOnSettings:
    """Section 7.1: what the server may add to, or lower in, the offer it accepts."""

    def test_chromiums_offer(self) -> None:
        """Chromium (and the websockets client) offer client_max_window_bits without a value:
        the server names the client's window and both sides' context takeover."""
        agreed = negotiate(["permessage-deflate; client_max_window_bits"])
        assert agreed == DeflateParams(True, True, 12, 12)
        assert agreed.response_header() == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=12"
        )

    def test_client_window_is_named_only_when_offered(self) -> None:
        """Section 7.1.2.2: without client_max_window_bits in the offer, the response must not
        carry it, so the client's window stays 15 bits."""
        assert negotiate(["permessage-deflate"]) == DeflateParams(True, True, 12, 15)

    @pytest.mark.parametrize(("offered", "agreed"), [(10, 10), (12, 12), (14, 12), (15, 12)])
    def test_the_smaller_window_wins(self, offered: int, agreed: int) -> None:
        """Sections 7.1.2.1 and 7.1.2.2: a response value is never above the offered one."""
        server = negotiate([f"permessage-deflate; server_max_window_bits={offered}"])
        assert server is not None and server.server_max_window_bits == agreed
        client = negotiate([f"permessage-deflate; client_max_window_bits={offered}"])
        assert client is not None and client.client_max_window_bits == agreed

    def test_client_may_still_ask_for_no_context_takeover(self) -> None:
        """Section 7.1.1.1: a server accepting an offer with server_no_context_takeover must
        include it, whatever its own preference."""
        settings = DeflateSettings(
            server_no_context_takeover=False, client_no_context_takeover=False
        )
        both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        assert negotiate([both], settings) == DeflateParams(True, True, 12, 15)
        assert negotiate(["permessage-deflate"], settings) == DeflateParams(False, False, 12, 15)

    def test_eight_bit_server_window_is_still_declined(self) -> None:
        assert negotiate(["permessage-deflate; server_max_window_bits=8"]) is None

    def test_compression_negotiates_on_its_settings(self) -> None:
        compression = Compression(DeflateSettings(server_max_window_bits=10))
        assert compression.negotiate(["permessage-deflate"]) == DeflateParams(True, True, 10, 15)
        assert compression.negotiate([]) is None


class TestMessageDeflater:
    """Section 7.1.1.1: without server context takeover every message is compressed on its
    own, so one deflater serves many connections and a message is compressed once."""

    def test_created_on_the_first_message(self) -> None:
        deflater = MessageDeflater(12)
        assert deflater.messages == 0
        assert inflate(deflater.compress(b"Hello" * 20), 12) == b"Hello" * 20
        assert deflater.messages == 1

    def test_each_message_stands_alone(self) -> None:
        """The same bytes as a brand-new compressor's, and a receiver with an empty window
        inflates every message."""
        deflater = MessageDeflater(10, level=9, mem_level=8)
        fresh = zlib.compressobj(9, zlib.DEFLATED, -10, 8)
        expected = (fresh.compress(b"Hello" * 20) + fresh.flush(zlib.Z_SYNC_FLUSH))[:-4]
        for data in [b"Hello" * 20, b"other text " * 30, b"Hello" * 20]:
            out = deflater.compress(data)
            assert inflate(out, 10) == data
        assert out == expected
        assert deflater.messages == 3

    def test_a_receiver_that_keeps_its_window_decodes_them_too(self) -> None:
        deflater = MessageDeflater(12)
        receiver = zlib.decompressobj(-12)
        for data in [b"Hello" * 20, b"", b"Hello" * 20]:
            assert receiver.decompress(deflater.compress(data) + TAIL) == data

    def test_empty_message(self) -> None:
        assert MessageDeflater(12).compress(b"") == b"\x00"


class TestCompression:
    """An endpoint's compression: one shared deflater per window size agreed."""

    def test_codecs_without_server_context_takeover_share_a_deflater(self) -> None:
        compression = Compression(DeflateSettings(compression_level=1, compression_mem_level=2))
        a = compression.codec(DeflateParams(True, False, 12, 15))
        b = compression.codec(DeflateParams(True, True, 12, 9))
        c = compression.codec(DeflateParams(True, True, 10, 15))
        assert a.shared_deflater is not None and a.shared_deflater is b.shared_deflater
        assert c.shared_deflater is not a.shared_deflater
        assert c.shared_deflater is not None
        assert (c.shared_deflater.window_bits, c.shared_deflater.level) == (10, 1)
        assert c.shared_deflater.mem_level == 2
        assert a.compress(b"x" * 300) == b.compress(b"x" * 300)
        assert a.shared_deflater.messages == 2
        assert a.contexts == b.contexts == 0

    def test_codec_with_context_takeover_has_its_own_compressor(self) -> None:
        compression = Compression()
        ours = compression.codec(DeflateParams(False, True, 12, 15))
        assert ours.shared_deflater is None
        assert ours.threshold == 256
        ours.compress(b"x" * 300)
        assert ours.contexts == 1


class TestLazyContexts:
    """No zlib object before a compressed message needs it; none kept when not needed."""

    def test_nothing_before_the_first_message(self) -> None:
        for params in [DeflateParams(), DeflateParams(True, True, 12, 12)]:
            assert PerMessageDeflate(params).contexts == 0

    def test_a_codec_without_a_shared_deflater_makes_its_own(self) -> None:
        ours = codec(server_no_context_takeover=True, server_max_window_bits=11)
        assert ours.shared_deflater is not None and ours.shared_deflater.window_bits == 11
        ours.compress(b"Hello" * 20)
        assert ours.contexts == 0 and ours.shared_deflater.messages == 1

    def test_compressor_with_context_takeover_is_released_when_idle(self) -> None:
        """The server may start a new DEFLATE stream at any message: a receiver that kept its
        window decodes what follows the release."""
        ours = codec(server_max_window_bits=12)
        receiver = zlib.decompressobj(-12)
        assert receiver.decompress(ours.compress(b"Hello" * 20) + TAIL) == b"Hello" * 20
        assert ours.contexts == 1
        ours.release_idle()  # used since the last call: kept
        assert ours.contexts == 1
        ours.release_idle()  # unused since: dropped
        assert ours.contexts == 0
        ours.release_idle()
        assert receiver.decompress(ours.compress(b"Hello" * 20) + TAIL) == b"Hello" * 20
        assert ours.contexts == 1

    def test_decompressor_without_client_context_takeover_goes_with_each_message(self) -> None:
        ours = codec(client_no_context_takeover=True)
        sender = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = (sender.compress(b"Hello" * 20) + sender.flush(zlib.Z_SYNC_FLUSH))[:-4]
        out = ours.decompress(payload[:5], final=False, max_size=100)
        assert ours.contexts == 1  # the message is not over
        out += ours.decompress(payload[5:], final=True, max_size=100 - len(out))
        assert out == b"Hello" * 20
        assert ours.contexts == 0
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"
        assert ours.contexts == 0

    def test_decompressor_with_client_context_takeover_is_kept(self) -> None:
        ours = codec()
        assert ours.decompress(HELLO, final=True, max_size=100) == b"Hello"
        assert ours.contexts == 1
        assert ours.decompress(HELLO_AGAIN, final=True, max_size=100) == b"Hello"
