"""The C accelerator (``roost.protocol._speedups``) and its pure-Python fallback in
``roost.protocol.frames``: the same contract, and how ``ROOST_NO_EXTENSIONS`` picks one.

Frame parsing is tested against both in test_frames.py; here masking, the selection, and
both implementations compared on the same input.
"""

from __future__ import annotations

import os
import sys
import types

import pytest

from roost.protocol import frames
from tests.protocol.wire import C_OR_REASON, IMPLEMENTATIONS, MASK, PYTHON, Impl, wire, xor


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
class TestApplyMask:
    """Section 5.3: octet i of the transformed data is octet i of the original XOR octet
    i MOD 4 of the masking key."""

    def test_rfc_example(self, impl: Impl) -> None:
        assert impl.apply_mask(b"Hello", MASK) == bytes.fromhex("7f9f4d5158")

    @pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1000, 65537])
    def test_matches_the_definition_at_every_alignment(self, impl: Impl, n: int) -> None:
        data = os.urandom(n)
        mask = os.urandom(4)
        assert impl.apply_mask(data, mask) == xor(data, mask)
        assert impl.apply_mask(impl.apply_mask(data, mask), mask) == data

    def test_accepts_bytearrays_and_returns_bytes(self, impl: Impl) -> None:
        out = impl.apply_mask(bytearray(b"Hello"), bytearray(MASK))
        assert out == bytes.fromhex("7f9f4d5158") and type(out) is bytes

    @pytest.mark.parametrize("mask", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
    def test_mask_must_be_four_bytes(self, impl: Impl, mask: bytes) -> None:
        with pytest.raises(ValueError, match="mask must be exactly 4 bytes"):
            impl.apply_mask(b"data", mask)


class TestSelection:
    def test_no_extensions_selects_the_fallback(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ROOST_NO_EXTENSIONS", "1")
        assert frames._load_speedups() == (PYTHON.apply_mask, PYTHON.parse_frame, False)

    def test_missing_extension_selects_the_fallback(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("ROOST_NO_EXTENSIONS", raising=False)
        monkeypatch.setitem(sys.modules, "roost.protocol._speedups", None)  # import fails
        assert frames._load_speedups() == (PYTHON.apply_mask, PYTHON.parse_frame, False)

    def test_built_extension_is_selected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Whatever this run's build: a stand-in module shows which names are taken."""
        fake = types.ModuleType("roost.protocol._speedups")
        fake.apply_mask = lambda data, mask: b"c-mask"  # type: ignore[attr-defined]
        fake.parse_frame = lambda buf, pos, expect_mask, limit: None  # type: ignore[attr-defined]
        monkeypatch.delenv("ROOST_NO_EXTENSIONS", raising=False)
        monkeypatch.setitem(sys.modules, "roost.protocol._speedups", fake)
        assert frames._load_speedups() == (fake.apply_mask, fake.parse_frame, True)  # type: ignore[attr-defined]

    def test_this_run_uses_what_the_environment_asks(self) -> None:
        if isinstance(C_OR_REASON, Impl):
            assert frames.HAS_SPEEDUPS
            assert (frames.apply_mask, frames.parse_frame) == (
                C_OR_REASON.apply_mask,
                C_OR_REASON.parse_frame,
            )
        else:
            assert not frames.HAS_SPEEDUPS
            assert (frames.apply_mask, frames.parse_frame) == (
                PYTHON.apply_mask,
                PYTHON.parse_frame,
            )


class TestBothAgree:
    """The C parser against the Python one on the same bytes (hypothesis explores more in
    test_properties.py)."""

    @pytest.fixture
    def c(self) -> Impl:
        if not isinstance(C_OR_REASON, Impl):
            pytest.skip(C_OR_REASON)
        return C_OR_REASON

    def test_on_frames_cut_anywhere(self, c: Impl) -> None:
        samples = [
            wire(op, b"z" * n, fin=fin, rsv=rsv, mask=mask)
            for op in (0, 1, 2, 3, 8, 9, 10, 0xB)
            for n in (0, 1, 125, 126, 300, 65536)
            for fin in (True, False)
            for rsv in (0, 4)
            for mask in (None, MASK)
        ]
        for data in samples:
            for cut in {0, 1, 2, 3, 4, 9, 10, 13, 14, len(data) - 1, len(data)}:
                for expect in (0, 0x80):
                    for limit in (0, 125, 300, 1 << 20):
                        args = (data[:cut], 0, expect, limit)
                        assert c.parse_frame(*args) == PYTHON.parse_frame(*args), args
