"""Helpers for tests/protocol: frames built by hand from RFC 6455 section 5.2 (independent of
roost's own encoder), and the frame-parser implementations a test can run against."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

import pytest

from roost.protocol import connection, frames
from roost.protocol.frames import ApplyMask, ParseFrame

#: A fixed masking key, so that expected bytes can be written out.
MASK = b"\x37\xfa\x21\x3d"


def xor(data: bytes, mask: bytes) -> bytes:
    """Section 5.3, byte by byte: octet i of the payload XOR octet i MOD 4 of the key."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def wire(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
) -> bytes:
    """One frame as section 5.2 draws it. ``rsv`` is the three RSV bits (0-7), ``mask`` None
    for a server's unmasked frame."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n <= 125:
        head = bytes((b0, mask_bit | n))
    elif n <= 0xFFFF:
        head = bytes((b0, mask_bit | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, mask_bit | 127)) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + xor(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """Section 5.5.1: a 2-byte status code in network byte order, then the reason."""
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class Impl:
    """One implementation of ``parse_frame`` and ``apply_mask``."""

    name: str
    parse_frame: ParseFrame
    apply_mask: ApplyMask


PYTHON = Impl("python", frames._parse_frame_python, frames._apply_mask_python)


def _c_implementation() -> Impl | str:
    """The C accelerator, or why this run does not use it."""
    if os.environ.get("ROOST_NO_EXTENSIONS"):
        return "ROOST_NO_EXTENSIONS is set: this run checks the pure-Python fallback alone"
    try:
        from roost.protocol import _speedups
    except ImportError:
        return "the C accelerator is not built"
    return Impl("c", _speedups.parse_frame, _speedups.apply_mask)


C_OR_REASON = _c_implementation()

#: Parametrize a test over both implementations; the C one is skipped, with the reason, in a run
#: without it.
IMPLEMENTATIONS = [
    pytest.param(PYTHON, id="python"),
    pytest.param(C_OR_REASON, id="c")
    if isinstance(C_OR_REASON, Impl)
    else pytest.param(None, id="c", marks=pytest.mark.skip(reason=C_OR_REASON)),
]


@contextmanager
def frames_implementation(impl: Impl) -> Iterator[None]:
    """Make WebSocketConnection use ``impl`` for the duration of the block."""
    with (
        mock.patch.object(connection, "parse_frame", impl.parse_frame),
        mock.patch.object(connection, "apply_mask", impl.apply_mask),
        mock.patch.object(frames, "apply_mask", impl.apply_mask),
    ):
        yield
