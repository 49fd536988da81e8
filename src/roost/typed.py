"""Typed WebSocket messages: the codecs (JSON, MessagePack), the table of an endpoint's
``.on(Type)`` handlers with its cached decoder of their tagged union, and the reply and error
messages roost answers with.

The dispatch loop that uses them is ``roost.session``'s; ``roost.websocket`` encodes typed
values with an endpoint's ``Codec``. The wire format is documented in docs/typed-messages.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec

__all__ = [
    "JSON",
    "MSGPACK",
    "Codec",
    "Error",
    "InvalidMessage",
    "MessageError",
    "MessageTable",
    "Reply",
    "as_message",
    "codec_named",
]

#: A correlation id: an integer, or a string of at most 128 characters.
Ref = int | Annotated[str, msgspec.Meta(max_length=128)]
#: The reserved top-level field that carries a correlation id.
REF_FIELD = "ref"


class Reply(msgspec.Struct, tag="reply", tag_field="type"):
    """The answer to a message that carried ``ref``: the handler's return value as ``data``
    (null when it returned None)."""

    ref: int | str
    data: Any = None


class Error(msgspec.Struct, tag="error", tag_field="type"):
    """The answer to a message roost could not handle: ``code`` (``decode_error``,
    ``validation_error``, ``internal_error``, or a handler's ``MessageError`` code), a
    readable ``message``, the JSON path of the bad value (``$.text``, or ``$`` for the whole
    message) for a validation error, and the message's ``ref`` when it carried one."""

    code: str
    message: str
    path: str | None = None
    ref: int | str | None = None


class MessageError(Exception):
    """Raise it in a typed handler to answer the message with an ``Error`` of ``code``
    (default ``"error"``) and ``message``; the connection stays open."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidMessage(Exception):
    """A received message did not decode into one of the endpoint's types; ``error`` is the
    answer to send."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class _RefOnly(msgspec.Struct):
    ref: Ref | None = None


class Codec:
    """How an endpoint's typed messages are written: ``"json"`` in text messages, or
    ``"msgpack"`` (MessagePack) in binary messages. Encoders and decoders are built once."""

    __slots__ = ("_bytes_marks", "_encode", "_ref", "_text_marks", "binary", "name")

    def __init__(self, name: Literal["json", "msgpack"]) -> None:
        self.name = name
        self.binary = name == "msgpack"
        if self.binary:
            self._encode: Callable[[Any], bytes] = msgspec.msgpack.Encoder().encode
            self._ref: Callable[[Any], _RefOnly] = msgspec.msgpack.Decoder(_RefOnly).decode
            # What a message that may carry ``ref`` contains (a text one cannot be MessagePack).
            self._text_marks: tuple[str, ...] = ()
            self._bytes_marks: tuple[bytes, ...] = (b"ref",)
        else:
            self._encode = msgspec.json.Encoder().encode
            self._ref = msgspec.json.Decoder(_RefOnly).decode
            # A key can only be spelled another way with a \u escape.
            self._text_marks = ('"ref"', "\\u")
            self._bytes_marks = (b'"ref"', b"\\u")

    def encode(self, value: Any) -> str | bytes:
        """``value`` as a message: ``str`` for JSON, ``bytes`` for MessagePack."""
        data = self._encode(value)
        return data if self.binary else data.decode("utf-8")

    def decoder(self, target: Any) -> Callable[[Any], Any]:
        """A decode function for ``target`` (a type or union)."""
        if self.binary:
            return msgspec.msgpack.Decoder(target).decode
        return msgspec.json.Decoder(target).decode

    def ref_of(self, data: str | bytes) -> int | str | None:
        """The ``ref`` field of a raw message, or None; raises InvalidMessage for a malformed
        message or a ``ref`` that is not an integer or a short string."""
        # Checked on every message, so without a loop or a generator: one or two marks.
        marks: tuple[Any, ...] = self._text_marks if isinstance(data, str) else self._bytes_marks
        if not marks or (marks[0] not in data and marks[-1] not in data):
            return None
        try:
            return self._ref(data).ref
        except msgspec.DecodeError as exc:
            raise InvalidMessage(_error(exc, None)) from None
        except RecursionError:
            raise InvalidMessage(_too_deep(None)) from None

    def __repr__(self) -> str:
        return f"<Codec {self.name}>"


JSON = Codec("json")
MSGPACK = Codec("msgpack")


def as_message(data: Any, codec: Codec = JSON) -> str | bytes:
    """``data`` itself if it is ``str`` or ``bytes``, else ``data`` encoded by ``codec``."""
    if isinstance(data, str | bytes):
        return data
    return codec.encode(data)


def codec_named(name: str) -> Codec:
    """The codec called ``name`` (``"json"`` or ``"msgpack"``); ValueError otherwise."""
    if name == "json":
        return JSON
    if name == "msgpack":
        return MSGPACK
    raise ValueError(f"encoding must be 'json' or 'msgpack', not {name!r}")


def _too_deep(ref: int | str | None) -> Error:
    return Error("decode_error", "the message is nested too deeply", None, ref)


def _error(exc: msgspec.DecodeError, ref: int | str | None) -> Error:
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return Error("decode_error", text, None, ref)
    message, sep, path = text.rpartition(" - at `")
    if sep:
        return Error("validation_error", message, path.rstrip("`"), ref)
    return Error("validation_error", text, "$", ref)


class MessageTable:
    """An endpoint's typed handlers, by message type, and the cached decoder of their tagged
    union. ``max_errors``: invalid messages a connection may send before it is closed with
    ``close_code`` (1008 policy violation, or 1007 invalid payload data); None never closes.
    """

    __slots__ = ("_decode", "close_code", "codec", "handlers", "max_errors", "replies", "sent")

    def __init__(
        self, codec: Codec = JSON, *, max_errors: int | None = None, close_code: int = 1008
    ) -> None:
        if max_errors is not None and max_errors < 1:
            raise ValueError("max_errors must be at least 1 (or None)")
        if close_code not in (1007, 1008):
            raise ValueError("close_code must be 1007 or 1008")
        self.codec = codec
        self.max_errors = max_errors
        self.close_code = close_code
        self.handlers: dict[type[msgspec.Struct], Callable[..., Any]] = {}
        #: The declared type of each handler's reply ``data`` (only for the documents).
        self.replies: dict[type[msgspec.Struct], Any] = {}
        #: The types the server declares it sends (only for the documents).
        self.sent: list[Any] = []
        self._decode: Callable[[Any], Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def add(
        self, message_type: type[msgspec.Struct], func: Callable[..., Any], reply: Any = None
    ) -> None:
        """Handle ``message_type`` (a tagged msgspec Struct) with ``func(websocket, msg)``;
        ``reply`` is the type of its reply's ``data`` as the AsyncAPI document shows it
        (None: ``func``'s return annotation).

        TypeError if it is not a tagged Struct, declares a ``ref`` field, its tag field
        differs from the others' or msgspec cannot decode it (an annotation that does not
        resolve yet); ValueError if its tag is already handled. The decoder of the tagged
        union is built here, once per registration."""
        if not (isinstance(message_type, type) and issubclass(message_type, msgspec.Struct)):
            raise TypeError(f"{message_type!r} is not a msgspec Struct")
        config = message_type.__struct_config__
        if config.tag is None or config.tag_field is None:
            raise TypeError(
                f"{message_type.__name__} needs a tag: declare it with "
                f"`class {message_type.__name__}(msgspec.Struct, tag=..., tag_field=...)`"
            )
        if REF_FIELD in message_type.__struct_fields__:
            raise TypeError(f"{message_type.__name__}: the field {REF_FIELD!r} is reserved")
        for other in self.handlers:
            other_config = other.__struct_config__
            if other_config.tag_field != config.tag_field:
                raise TypeError(
                    f"{message_type.__name__} is tagged by {config.tag_field!r}, "
                    f"the endpoint's other messages by {other_config.tag_field!r}"
                )
            if other_config.tag == config.tag:
                raise ValueError(f"message tag {config.tag!r} is already handled")
        types = (*self.handlers, message_type)
        target: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
        try:
            self._decode = self.codec.decoder(target)
        except (NameError, TypeError) as exc:
            raise TypeError(f"{message_type.__name__} cannot be decoded: {exc}") from exc
        self.handlers[message_type] = func
        if reply is not None:
            self.replies[message_type] = reply

    def sends(self, *types: Any) -> None:
        """Declare types the server sends on the endpoint, for the AsyncAPI document."""
        self.sent.extend(t for t in types if t not in self.sent)

    @property
    def types(self) -> tuple[type[msgspec.Struct], ...]:
        """The handled message types, in registration order."""
        return tuple(self.handlers)

    def decode(self, data: str | bytes) -> tuple[msgspec.Struct, int | str | None]:
        """(message, ref) of a received message; InvalidMessage says what was wrong."""
        if self.codec.binary and isinstance(data, str):
            raise InvalidMessage(
                Error("decode_error", "expected a binary (MessagePack) message, got text")
            )
        ref = self.codec.ref_of(data)
        if self._decode is None:
            raise RuntimeError("no message types are registered")
        try:
            return self._decode(data), ref
        except msgspec.DecodeError as exc:
            raise InvalidMessage(_error(exc, ref)) from None
        except RecursionError:
            raise InvalidMessage(_too_deep(ref)) from None
