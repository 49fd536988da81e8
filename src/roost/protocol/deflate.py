"""RFC 7692 permessage-deflate: negotiation on the server side and the per-message codec."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from roost.protocol.errors import ProtocolError

_TAIL: Final = b"\x00\x00\xff\xff"
EXTENSION_NAME: Final = "permessage-deflate"


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


def _parse_offer(params: list[str]) -> DeflateParams | None:
    """One client offer's parameters, or None when the offer is malformed (section 7.1)."""
    seen: set[str] = set()
    server_nct = client_nct = False
    server_bits = 15
    client_bits = 15
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
            if not (value.isdigit() and 8 <= int(value) <= 15 and value[0] != "0"):
                return None
            server_bits = int(value)
        elif name == "client_max_window_bits":
            if value:
                if not (value.isdigit() and 8 <= int(value) <= 15 and value[0] != "0"):
                    return None
                client_bits = int(value)
        else:
            return None
    # zlib cannot produce a raw deflate stream with an 8-bit window, so an offer that limits
    # the server to 8 bits is declined (RFC 7692 section 5.1 lets the server decline an offer).
    if server_bits == 8:
        return None
    return DeflateParams(server_nct, client_nct, server_bits, client_bits)


def negotiate(header_values: list[str]) -> DeflateParams | None:
    """Accept the first acceptable permessage-deflate offer in the request's headers."""
    for header in header_values:
        for offer in header.split(","):
            name, *params = offer.split(";")
            if name.strip().lower() != EXTENSION_NAME:
                continue
            agreed = _parse_offer(params)
            if agreed is not None:
                return agreed
    return None


class PerMessageDeflate:
    """Compress outgoing and decompress incoming messages for one server-side connection."""

    __slots__ = ("_compressor", "_decompressor", "params")

    def __init__(self, params: DeflateParams) -> None:
        self.params = params
        self._compressor = self._new_compressor()
        self._decompressor = self._new_decompressor()

    def _new_compressor(self) -> zlib._Compress:
        return zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.params.server_max_window_bits
        )

    def _new_decompressor(self) -> zlib._Decompress:
        # A decoder with a larger window than the encoder used decodes the stream fine.
        return zlib.decompressobj(-max(self.params.client_max_window_bits, 9))

    def compress(self, data: bytes) -> bytes:
        """One whole message's payload, compressed (section 7.2.1)."""
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.params.server_no_context_takeover:
            self._compressor = self._new_compressor()
        # A sync flush always ends with the empty stored block 00 00 ff ff: drop it.
        out = out[:-4]
        return out or b"\x00"

    def decompress(self, data: bytes, *, final: bool, max_size: int) -> bytes:
        """Decompress one frame of a compressed message, never producing over ``max_size`` bytes.

        Raises ProtocolError 1009 when the output would pass ``max_size`` (a compression bomb
        is stopped before it is allocated) and 1007 for a corrupt stream.
        """
        if final:
            data += _TAIL
        try:
            out = self._decompressor.decompress(data, max_size + 1)
            while self._decompressor.eof and len(out) <= max_size:
                # A block with BFINAL set ended the DEFLATE stream (section 7.2.3.4): what
                # follows it in the message starts a new one.
                rest = self._decompressor.unused_data
                if not rest and not final:
                    break  # the next frame goes on after the end; this loop picks it up
                self._decompressor = self._new_decompressor()
                if final and rest == _TAIL:
                    break  # nothing followed but the tail appended above
                out += self._decompressor.decompress(rest, max_size + 1 - len(out))
        except zlib.error as exc:
            raise ProtocolError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > max_size or self._decompressor.unconsumed_tail:
            raise ProtocolError(1009, "decompressed message is over the size limit")
        if final and self.params.client_no_context_takeover:
            self._decompressor = self._new_decompressor()
        return out
