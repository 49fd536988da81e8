"""roost.typed on its own: what an endpoint may register, how messages decode, and what each
kind of bad input is answered with."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from roost.typed import JSON, MSGPACK, Error, InvalidMessage, MessageTable, as_message, codec_named


class A(msgspec.Struct, tag="a", tag_field="type"):
    x: int


class B(msgspec.Struct, tag="b", tag_field="type"):
    y: str = ""


class Untagged(msgspec.Struct):
    x: int


class OtherField(msgspec.Struct, tag="c", tag_field="kind"):
    x: int


class SameTag(msgspec.Struct, tag="a", tag_field="type"):
    z: int


class HasRef(msgspec.Struct, tag="r", tag_field="type"):
    ref: int


def handler(websocket: Any, msg: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (Untagged, TypeError),
        (OtherField, TypeError),
        (SameTag, ValueError),
        (HasRef, TypeError),
        (dict, TypeError),
    ],
)
def test_registration_refuses_what_cannot_be_dispatched(kind: Any, error: type) -> None:
    table = MessageTable()
    table.add(A, handler)
    with pytest.raises(error):
        table.add(kind, handler)
    assert table.types == (A,)


class Dangling(msgspec.Struct, tag="d", tag_field="type"):
    later: NotYetDefined  # type: ignore[name-defined]  # noqa: F821


def test_a_type_msgspec_cannot_resolve_fails_at_registration() -> None:
    table = MessageTable()
    table.add(A, handler)
    with pytest.raises(TypeError, match="Dangling cannot be decoded"):
        table.add(Dangling, handler)
    assert table.types == (A,)
    assert table.decode('{"type": "a", "x": 1}') == (A(1), None)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="1007 or 1008"):
        MessageTable(close_code=1000)
    with pytest.raises(ValueError, match="at least 1"):
        MessageTable(max_errors=0)
    with pytest.raises(ValueError, match="'json' or 'msgpack'"):
        codec_named("xml")
    assert codec_named("json") is JSON
    assert codec_named("msgpack") is MSGPACK


def test_one_type_or_a_union_decodes_with_its_ref() -> None:
    table = MessageTable()
    assert not table
    table.add(A, handler)
    assert table.decode('{"type": "a", "x": 1}') == (A(1), None)
    with pytest.raises(InvalidMessage) as caught:
        table.decode('{"type": "b"}')
    assert caught.value.error == Error("validation_error", "Invalid value 'b'", "$.type")
    table.add(B, handler)
    assert table.decode(b'{"type": "b", "ref": 3}') == (B(), 3)
    assert table.decode('{"type": "b", "y": "\\u00e9"}') == (B("é"), None)


def test_msgpack_tables_take_binary_only() -> None:
    table = MessageTable(MSGPACK)
    table.add(A, handler)
    assert table.decode(msgspec.msgpack.encode({"type": "a", "x": 1, "ref": "q"})) == (A(1), "q")
    with pytest.raises(InvalidMessage) as caught:
        table.decode('{"type": "a", "x": 1}')
    assert caught.value.error.code == "decode_error"


def test_typed_values_are_encoded_once_and_text_passes_through() -> None:
    assert as_message("raw") == "raw"
    assert as_message(b"raw", MSGPACK) == b"raw"
    assert as_message(A(1)) == '{"type":"a","x":1}'
    assert msgspec.msgpack.decode(as_message(A(1), MSGPACK)) == {"type": "a", "x": 1}


class Anything(msgspec.Struct, tag="any", tag_field="type"):
    data: object = None


def test_a_message_nested_too_deeply_is_a_decode_error() -> None:
    """msgspec stops at Python's recursion limit: that is bad input, not a crash."""
    table = MessageTable()
    table.add(Anything, handler)
    deep = '{"type": "any", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidMessage) as caught:
        table.decode(deep)
    assert caught.value.error == Error("decode_error", "the message is nested too deeply")
    with pytest.raises(InvalidMessage) as caught:
        table.decode(deep.replace('"any"', '"any", "ref": 1'))
    assert caught.value.error.code == "decode_error"
