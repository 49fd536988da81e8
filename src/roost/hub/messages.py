"""What nodes say to each other through a broker: typed, versioned envelopes in MessagePack.

Every message is a map with ``v`` (the envelope version), ``n`` (the sending node), ``t``
(the kind) and the kind's own fields. Payloads travel as MessagePack strings or binaries, not
as base64.

Compatibility, for rolling upgrades (old and new nodes on one broker):
- Within a version, changes are additive only: a new optional field (older nodes skip fields
  they do not know) or a new kind (older nodes log it once and skip it).
- Anything an older node would misread bumps ``VERSION``. A node that receives a version it
  does not speak logs it once per sending node and ignores that node's messages, and never
  fails; delivery between the two generations resumes when the upgrade is over.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

__all__ = [
    "VERSION",
    "Broadcast",
    "Codec",
    "Disconnect",
    "Gone",
    "Hello",
    "Join",
    "Leave",
    "Message",
    "Presence",
    "SendTo",
    "State",
    "Undecodable",
]

logger = logging.getLogger("roost.hub")

#: The envelope version this node speaks.
VERSION = 1


class Message(msgspec.Struct, tag_field="t", kw_only=True):
    """The envelope every message shares."""

    v: int = VERSION
    n: str = ""  # the sending node; filled in by the hub


class Hello(Message, tag="hello"):
    """A node joined (or came back after its broker link was lost), with its connections
    when presence is replicated through messages: others answer with theirs (``State``)."""

    connections: dict[str, tuple[str, list[str]]] = {}
    meta: dict[str, dict[str, Any]] = {}  # connection id -> room -> metadata, when any


class Gone(Message, tag="gone"):
    """A node left (said by the node itself, or by the relay when a worker's link drops)."""


class Presence(Message, tag="p"):
    """A connection of the sender opened, changed rooms (``endpoint`` set) or ended (None)."""

    id: str
    endpoint: str | None = None
    rooms: list[str] = []
    meta: dict[str, Any] = {}  # room -> metadata, for the rooms joined with some


class State(Message, tag="state"):
    """The sender's connections, for the node ``to`` (every node when empty): id ->
    (endpoint, rooms). A large state comes in parts: part 0 replaces what the receiver
    knew of the sender, the parts after it add to it."""

    to: str
    part: int = 0
    connections: dict[str, tuple[str, list[str]]] = {}
    meta: dict[str, dict[str, Any]] = {}


class Broadcast(Message, tag="bc"):
    """Deliver ``text`` or ``binary`` to every connection of ``endpoint`` (or its ``room``)."""

    endpoint: str
    room: str | None = None
    exclude: str | None = None
    text: str | None = None
    binary: bytes | None = None
    control: bool = False  # from roost itself: reaches members whose history is replaying


class SendTo(Message, tag="to"):
    """Deliver ``text`` or ``binary`` to connection ``id``."""

    id: str
    text: str | None = None
    binary: bytes | None = None


class Disconnect(Message, tag="dc"):
    """Close connection ``id`` with ``code``."""

    id: str
    code: int = 1000
    reason: str = ""


class Join(Message, tag="join"):
    """Put connection ``id`` in ``room``, with ``meta``; in a room with history, with the
    last ``replay`` messages when it asked for no position."""

    id: str
    room: str
    meta: Any = None
    replay: int = 0


class Leave(Message, tag="leave"):
    """Take connection ``id`` out of ``room``."""

    id: str
    room: str


Any_ = Hello | Gone | Presence | State | Broadcast | SendTo | Disconnect | Join | Leave


class _Header(msgspec.Struct):
    """What can be read of any envelope, of any version."""

    v: int = 0
    n: str = ""
    t: str = ""


class Undecodable(Exception):
    """A message this node cannot use; ``reason`` says why, ``node`` who sent it."""

    def __init__(self, reason: str, node: str = "", version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node
        self.version = version


class Codec:
    """Encodes and decodes envelopes; one per hub (it holds no state that nodes share)."""

    __slots__ = ("_decoder", "_encoder", "_header")

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Any_)
        self._header = msgspec.msgpack.Decoder(_Header)

    def encode(self, message: Message) -> bytes:
        """The bytes of ``message``."""
        return self._encoder.encode(message)

    def decode(self, raw: bytes) -> Message:
        """The message in ``raw``; raises Undecodable for another version, an unknown kind or
        bytes that are not an envelope."""
        try:
            message: Message = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            header = self.header(raw)
            if header is None:
                raise Undecodable("not a roost hub message") from None
            if header.v != VERSION:
                raise Undecodable(f"envelope version {header.v}", header.n, header.v) from None
            raise Undecodable(f"unknown or malformed message {header.t!r}", header.n) from None
        if message.v != VERSION:
            raise Undecodable(f"envelope version {message.v}", message.n, message.v)
        return message

    def header(self, raw: bytes) -> _Header | None:
        """The version, sender and kind of any envelope, or None for bytes that are not one."""
        try:
            return self._header.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
