"""RFC 7692 permessage-deflate on the server side: the server's settings, the negotiation, the
per-message codec, and the deflater that connections without context takeover share.

What zlib holds (measured with zlib 1.2.13): a compressor about ``2**(window_bits + 2) +
2**(mem_level + 9)`` bytes plus 6 KB (40 KB for 12 bits and memLevel 5, 263 KB for zlib's
15 and 8); a decompressor 7.5 KB, plus ``2**window_bits`` bytes once it has inflated something
(12 KB for 12 bits, 40 KB for 15). Nothing is allocated before a message needs it:

- a connection whose server side has no context takeover compresses through its endpoint's
  shared ``MessageDeflater`` and holds no compressor of its own;
- a connection with context takeover creates its compressor on the first compressed message
  it sends, and ``release_idle()`` drops it again once it goes unused (the server may always
  start a new DEFLATE stream: the client's window still decodes it);
- the decompressor is created on the first compressed message received, and dropped at the
  end of each message when the client has no context takeover.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from roost.protocol.errors import ProtocolError

_TAIL: Final = b"\x00\x00\xff\xff"
EXTENSION_NAME: Final = "permessage-deflate"


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflateSettings:
    """What the server asks for when a client offers permessage-deflate, and how it compresses.

    - ``server_no_context_takeover`` (True): compress every message on its own. The response
      says so, the connection holds no compressor, and a broadcast is compressed once for all
      such connections. False keeps a compressor (and its window) per connection: smaller
      output for similar messages, ``2**(server_max_window_bits + 2) +
      2**(compression_mem_level + 9)`` bytes each. A client that asks for it gets it anyway.
    - ``client_no_context_takeover`` (True): ask the client to compress every message on its
      own, so that no decompressor is kept between messages. False lets the client refer
      back to earlier messages, and the server keeps a decompressor with its window
      (``2**client_max_window_bits`` bytes plus 7.5 KB) for the connection's life.
    - ``server_max_window_bits`` (12): the LZ77 window the server compresses with, 9 to 15
      (a client may ask for less; an offer of 8 is declined, as zlib cannot write it).
    - ``client_max_window_bits`` (12): the window the client is asked to compress with, 9 to
      15, when its offer allows the server to choose (browsers' offers do); it sizes the
      decompressor.
    - ``compression_level`` (6): zlib's level, 1 (fastest) to 9 (smallest).
    - ``compression_mem_level`` (5): zlib's memLevel, 1 to 9: the compressor's hash table and
      buffer, ``2**(compression_mem_level + 9)`` bytes.
    - ``compression_threshold`` (256 bytes): messages shorter than this (their UTF-8 or
      binary payload) are sent uncompressed, which RFC 7692 allows message by message; 0
      compresses every message.
    """

    server_no_context_takeover: bool = True
    client_no_context_takeover: bool = True
    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    compression_level: int = 6
    compression_mem_level: int = 5
    compression_threshold: int = 256

    def __post_init__(self) -> None:
        for name in ("server_no_context_takeover", "client_no_context_takeover"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        _check_int("server_max_window_bits", self.server_max_window_bits, 9, 15)
        _check_int("client_max_window_bits", self.client_max_window_bits, 9, 15)
        _check_int("compression_level", self.compression_level, 1, 9)
        _check_int("compression_mem_level", self.compression_mem_level, 1, 9)
        _check_int("compression_threshold", self.compression_threshold, 0)


DEFAULT_SETTINGS: Final = DeflateSettings()


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The parameters agreed for one connection (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def response_header(self) -> str:
        """The value of the server's ``Sec-WebSocket-Extensions`` response header."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class _Offer:
    """One client offer's parameters (section 7.1); None where the client left it out."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | None
    client_max_window_bits_offered: bool


def _window_bits(value: str) -> int | None:
    """A window-bits value (section 7.1.2): 8 to 15, no leading zero; None when malformed."""
    if value.isdigit() and value[0] != "0" and 8 <= int(value) <= 15:
        return int(value)
    return None


def _parse_offer(params: list[str]) -> _Offer | None:
    """One client offer's parameters, or None when the offer is malformed (section 7.1)."""
    seen: set[str] = set()
    server_nct = client_nct = client_offered = False
    server_bits: int | None = None
    client_bits: int | None = None
    for raw in params:
        name, _, value = raw.strip().partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if not name or name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover" and not value:
            server_nct = True
        elif name == "client_no_context_takeover" and not value:
            client_nct = True
        elif name == "server_max_window_bits":
            server_bits = _window_bits(value)
            if server_bits is None:
                return None
        elif name == "client_max_window_bits":
            client_offered = True
            if value:
                client_bits = _window_bits(value)
                if client_bits is None:
                    return None
        else:
            return None
    return _Offer(server_nct, client_nct, server_bits, client_bits, client_offered)


def _accept(offer: _Offer, settings: DeflateSettings) -> DeflateParams | None:
    """The parameters the server answers ``offer`` with, or None to decline it (section 5)."""
    server_bits = settings.server_max_window_bits
    if offer.server_max_window_bits is not None:
        # zlib cannot produce a raw deflate stream with an 8-bit window, so an offer that
        # limits the server to 8 bits is declined (section 5.1 lets the server decline).
        if offer.server_max_window_bits == 8:
            return None
        server_bits = min(server_bits, offer.server_max_window_bits)
    client_bits = 15
    if offer.client_max_window_bits_offered:
        # Section 7.1.2.2: the server may name a window no larger than the client's hint.
        client_bits = min(settings.client_max_window_bits, offer.client_max_window_bits or 15)
    return DeflateParams(
        offer.server_no_context_takeover or settings.server_no_context_takeover,
        offer.client_no_context_takeover or settings.client_no_context_takeover,
        server_bits,
        client_bits,
    )


def negotiate(
    header_values: list[str], settings: DeflateSettings = DEFAULT_SETTINGS
) -> DeflateParams | None:
    """Accept the first acceptable permessage-deflate offer in the request's headers, on the
    server's ``settings``; None when there is none."""
    for header in header_values:
        for offer in header.split(","):
            name, *params = offer.split(";")
            if name.strip().lower() != EXTENSION_NAME:
                continue
            parsed = _parse_offer(params)
            agreed = _accept(parsed, settings) if parsed is not None else None
            if agreed is not None:
                return agreed
    return None


class MessageDeflater:
    """Compresses whole messages, each as if by a new compressor: a full flush after every
    message resets zlib's state, so no message refers back to another (section 7.1.1.1) and
    one deflater serves every connection that agreed to no server context takeover with this
    window. Its zlib compressor is created on the first message. ``messages`` counts the
    messages compressed."""

    __slots__ = ("_compressor", "level", "mem_level", "messages", "window_bits")

    def __init__(self, window_bits: int, level: int = 6, mem_level: int = 5) -> None:
        self.window_bits = window_bits
        self.level = level
        self.mem_level = mem_level
        self.messages = 0
        self._compressor: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        """One whole message's payload, compressed on its own (section 7.2.1)."""
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.window_bits, self.mem_level
            )
        self.messages += 1
        out = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        # A full flush ends with the empty stored block 00 00 ff ff: drop it.
        return out[:-4] or b"\x00"


class Compression:
    """An endpoint's permessage-deflate: its ``settings``, the negotiation, and the
    ``MessageDeflater`` its connections without server context takeover share (one per
    window size agreed)."""

    __slots__ = ("_deflaters", "settings")

    def __init__(self, settings: DeflateSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self._deflaters: dict[int, MessageDeflater] = {}

    def negotiate(self, header_values: list[str]) -> DeflateParams | None:
        """The parameters to agree to for these ``Sec-WebSocket-Extensions`` values."""
        return negotiate(header_values, self.settings)

    def codec(self, params: DeflateParams) -> PerMessageDeflate:
        """The codec of one connection that agreed to ``params``."""
        shared = None
        if params.server_no_context_takeover:
            bits = params.server_max_window_bits
            shared = self._deflaters.get(bits)
            if shared is None:
                settings = self.settings
                shared = self._deflaters[bits] = MessageDeflater(
                    bits, settings.compression_level, settings.compression_mem_level
                )
        return PerMessageDeflate(params, self.settings, shared)


class PerMessageDeflate:
    """Compress outgoing and decompress incoming messages for one server-side connection.

    ``threshold``: messages shorter than this many bytes are sent uncompressed.
    ``shared_deflater``: the deflater this connection compresses with when the server side
    has no context takeover (given, or its own), else None.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_level",
        "_mem_level",
        "_used",
        "params",
        "shared_deflater",
        "threshold",
    )

    def __init__(
        self,
        params: DeflateParams,
        settings: DeflateSettings = DEFAULT_SETTINGS,
        shared: MessageDeflater | None = None,
    ) -> None:
        self.params = params
        self.threshold = settings.compression_threshold
        self._level = settings.compression_level
        self._mem_level = settings.compression_mem_level
        if params.server_no_context_takeover and shared is None:
            shared = MessageDeflater(params.server_max_window_bits, self._level, self._mem_level)
        self.shared_deflater = shared if params.server_no_context_takeover else None
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._used = False  # a message was compressed since the last release_idle()

    @property
    def contexts(self) -> int:
        """How many zlib objects this connection holds now (its compressor and decompressor;
        a shared deflater is not counted)."""
        return (self._compressor is not None) + (self._decompressor is not None)

    def release_idle(self) -> None:
        """Drop this connection's compressor if no message was compressed since the previous
        call: the next message starts a new DEFLATE stream, which the client decodes with
        the window it keeps. Call it periodically on connections with context takeover."""
        if not self._used:
            self._compressor = None
        self._used = False

    def compress(self, data: bytes) -> bytes:
        """One whole message's payload, compressed (section 7.2.1)."""
        shared = self.shared_deflater
        if shared is not None:
            return shared.compress(data)
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self._level, zlib.DEFLATED, -self.params.server_max_window_bits, self._mem_level
            )
        self._used = True
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        # A sync flush always ends with the empty stored block 00 00 ff ff: drop it.
        return out[:-4] or b"\x00"

    def _new_decompressor(self) -> zlib._Decompress:
        # A decoder with a larger window than the encoder used decodes the stream fine.
        return zlib.decompressobj(-max(self.params.client_max_window_bits, 9))

    def decompress(self, data: bytes, *, final: bool, max_size: int) -> bytes:
        """Decompress one frame of a compressed message, never producing over ``max_size`` bytes.

        Raises ProtocolError 1009 when the output would pass ``max_size`` (a compression bomb
        is stopped before it is allocated) and 1007 for a corrupt stream.
        """
        if final:
            data += _TAIL
        decompressor = self._decompressor or self._new_decompressor()
        try:
            out = decompressor.decompress(data, max_size + 1)
            while decompressor.eof and len(out) <= max_size:
                # A block with BFINAL set ended the DEFLATE stream (section 7.2.3.4): what
                # follows it in the message starts a new one.
                rest = decompressor.unused_data
                if not rest and not final:
                    break  # the next frame goes on after the end; this loop picks it up
                decompressor = self._new_decompressor()
                if final and rest == _TAIL:
                    break  # nothing followed but the tail appended above
                out += decompressor.decompress(rest, max_size + 1 - len(out))
        except zlib.error as exc:
            raise ProtocolError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > max_size or decompressor.unconsumed_tail:
            raise ProtocolError(1009, "decompressed message is over the size limit")
        # Section 7.1.1.2: without client context takeover, no message refers back to an
        # earlier one, so the decompressor (and its window) goes with the message.
        keep = not (final and self.params.client_no_context_takeover)
        self._decompressor = decompressor if keep else None
        return out
