"""RFC 6455 section 5: the WebSocket frame format, close codes and payload masking."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Final

from roost.protocol.errors import ProtocolError


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(IntEnum):
    """Close codes (RFC 6455 section 7.4.1 and the IANA registry)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


DATA_OPCODES: Final = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES: Final = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
MAX_CONTROL_PAYLOAD: Final = 125

# Codes that may appear in a close frame on the wire (RFC 6455 section 7.4.1): 1004, 1005,
# 1006 and 1015 are reserved and never sent; 3000-4999 are for libraries and applications.
_SENDABLE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may be carried by a close frame (RFC 6455 section 7.4)."""
    return code in _SENDABLE_CODES or 3000 <= code <= 4999


def _apply_mask_python(data: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask`` (RFC 6455 section 5.3), without C."""
    if len(mask) != 4:
        raise ValueError("mask must be exactly 4 bytes")
    n = len(data)
    if n == 0:
        return b""
    repeated = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


ApplyMask = Callable[[bytes | bytearray, bytes | bytearray], bytes]


#: What ``parse_frame`` returns: None (incomplete), a violation number, or a frame.
ParseResult = None | int | tuple[int, bytes, int]
ParseFrame = Callable[[bytes | bytearray, int, int, int], ParseResult]

#: The violations ``parse_frame`` reports, as close codes and reasons.
VIOLATIONS: Final = {
    1: (1002, "wrong mask bit: clients must mask, servers must not"),
    2: (1002, "control frame payload over 125 bytes"),
    3: (1002, "fragmented control frame"),
    4: (1002, "64-bit length with the high bit set"),
    5: (1009, "message over the size limit"),
}


def _parse_frame_python(
    buf: bytes | bytearray, pos: int, expect_mask: int, limit: int
) -> ParseResult:
    """One frame from ``buf[pos:]`` (sections 5.2 and 5.3): None when it is not complete,
    a key of VIOLATIONS when its header breaks the RFC (or a data frame is over ``limit``
    bytes), else ``(first header byte, unmasked payload, position after the frame)``."""
    n = len(buf)
    if n - pos < 2:
        return None
    b0 = buf[pos]
    b1 = buf[pos + 1]
    length = b1 & 0x7F
    start = pos + 2
    if length == 126:
        if n - pos < 4:
            return None
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        start = pos + 4
    elif length == 127:
        if n - pos < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        start = pos + 10
        if length >> 63:
            return 4
    if (b1 & 0x80) != (0x80 if expect_mask else 0):
        return 1
    if b0 & 0x08:
        if length > 125:
            return 2
        if not b0 & 0x80:
            return 3
    elif length > limit:
        return 5
    if expect_mask:
        end = start + 4 + length
        if end > n:
            return None
        return b0, apply_mask(buf[start + 4 : end], buf[start : start + 4]), end
    end = start + length
    if end > n:
        return None
    return b0, bytes(buf[start:end]), end


def _load_speedups() -> tuple[ApplyMask, ParseFrame, bool]:
    if os.environ.get("ROOST_NO_EXTENSIONS"):
        return _apply_mask_python, _parse_frame_python, False
    try:
        from roost.protocol._speedups import apply_mask as c_apply_mask
        from roost.protocol._speedups import parse_frame as c_parse_frame
    except ImportError:
        return _apply_mask_python, _parse_frame_python, False
    return c_apply_mask, c_parse_frame, True


#: ``apply_mask(data, mask)``: XOR ``data`` with the repeated 4-byte ``mask`` (section 5.3);
#: ``parse_frame(buf, pos, expect_mask, limit)``: see ``_parse_frame_python``. Both are the C
#: accelerator when it is built and ROOST_NO_EXTENSIONS is unset, else pure Python.
apply_mask: ApplyMask
parse_frame: ParseFrame
apply_mask, parse_frame, HAS_SPEEDUPS = _load_speedups()

_pack_h: Final = struct.Struct("!BBH").pack
_pack_q: Final = struct.Struct("!BBQ").pack


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """Serialize one frame. ``mask`` (4 bytes) is given by clients only (section 5.3)."""
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 65536:
        header = _pack_h(b0, mask_bit | 126, n)
    else:
        header = _pack_q(b0, mask_bit | 127, n)
    if mask is not None:
        return header + mask + apply_mask(payload, mask)
    return header + payload


def encode_close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte code and a UTF-8 reason (section 5.5.1)."""
    if code == CloseCode.NO_STATUS:
        return b""
    data = struct.pack("!H", code) + reason.encode("utf-8")
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise ValueError("close reason is too long: at most 123 bytes of UTF-8")
    return data


def decode_close_payload(payload: bytes) -> tuple[int, str]:
    """Parse a received close payload; raise ProtocolError for a malformed one (section 7.1.6)."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    (code,) = struct.unpack("!H", payload[:2])
    if not is_valid_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason
