"""RFC 6455 connection state: bytes in, events out; calls in, bytes out.

The parser never raises to its caller: a peer's violation becomes a close frame with the right
code (1002, 1007, 1009) queued in ``data_to_send()`` and a ``Closed`` event.
"""

from __future__ import annotations

import codecs
import os
from enum import Enum
from typing import Final

from roost.protocol.deflate import MessageDeflater, PerMessageDeflate
from roost.protocol.errors import InvalidState, ProtocolError
from roost.protocol.events import Closed, Event, Ping, Pong
from roost.protocol.frames import (
    VIOLATIONS,
    CloseCode,
    Opcode,
    apply_mask,
    decode_close_payload,
    encode_close_payload,
    encode_frame,
    is_valid_close_code,
    parse_frame,
)

DEFAULT_MAX_MESSAGE_SIZE: Final = 1_048_576
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class SharedMessage:
    """One message to send to many connections, encoded once: ``frame`` is its unmasked,
    uncompressed frame, and ``compressed_frame(deflater)`` its compressed frame, made once per
    shared deflater (so a broadcast compresses once for all the connections that agreed to
    no server context takeover with the same window)."""

    __slots__ = ("_compressed", "frame", "opcode", "payload")

    def __init__(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.opcode = Opcode.TEXT
            self.payload = message.encode("utf-8")
        else:
            self.opcode = Opcode.BINARY
            self.payload = bytes(message)
        self.frame = encode_frame(self.opcode, self.payload)
        self._compressed: dict[MessageDeflater, bytes] = {}

    def compressed_frame(self, deflater: MessageDeflater) -> bytes:
        """The unmasked frame of the message compressed by ``deflater`` (RSV1 set)."""
        frame = self._compressed.get(deflater)
        if frame is None:
            frame = encode_frame(self.opcode, deflater.compress(self.payload), rsv1=True)
            self._compressed[deflater] = frame
        return frame


class State(Enum):
    """Where the connection is in its life (RFC 6455 section 4 to 7)."""

    OPEN = "OPEN"
    CLOSING = "CLOSING"  # we sent a close frame and wait for the peer's
    CLOSED = "CLOSED"


class WebSocketConnection:
    """One WebSocket connection after the handshake, server side unless ``client=True``.

    ``max_message_size`` (bytes, after decompression) bounds every message; a larger one fails
    the connection with 1009 before its payload is buffered.

    With ``defer_failure=True`` a peer's violation does not queue the close frame at once:
    ``failure`` holds the code and reason and reading stops, so that the owner can first
    answer the messages that came before the violation, then call ``fail(*failure)``.

    A ping is answered by a pong queued in ``data_to_send()``, unless the owner has set
    ``coalesce_pongs`` (because the peer is not reading what it is sent): then only the most
    recent ping is remembered, in ``unanswered_ping``, and ``pending_pong()`` gives its pong
    when the owner can write it (RFC 6455 section 5.5.3 allows answering only the latest).

    ``deflate``, the permessage-deflate codec, is dropped (set to None) once the connection is
    CLOSED. A message shorter than its ``threshold`` is sent uncompressed.
    """

    __slots__ = (
        "_buf",
        "_compressed",
        "_decoder",
        "_expect_mask",
        "_frag",
        "_frag_opcode",
        "_frag_size",
        "_out",
        "_partial",
        "_partial_done",
        "client",
        "close_code",
        "close_reason",
        "close_sent",
        "coalesce_pongs",
        "defer_failure",
        "deflate",
        "failure",
        "max_message_size",
        "peer_closed_first",
        "state",
        "unanswered_ping",
    )

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        deflate: PerMessageDeflate | None = None,
        client: bool = False,
        defer_failure: bool = False,
    ) -> None:
        self.max_message_size = max_message_size
        self.defer_failure = defer_failure
        self.failure: tuple[int, str] | None = None
        self.deflate = deflate
        self.client = client
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self.peer_closed_first = False  # the peer's close frame began the closing handshake
        self.coalesce_pongs = False
        self.unanswered_ping: bytes | None = None
        self._expect_mask = 0 if client else 0x80
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._frag_opcode = 0
        self._frag_size = 0
        # A fragmented message so far, as bytes: one growing buffer, so that a message of
        # many tiny (or empty) fragments costs no more memory than its size.
        self._frag = bytearray()
        self._compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._partial: codecs.IncrementalDecoder | None = None
        self._partial_done = 0

    def _set_closed(self) -> None:
        """Enter CLOSED. No message can be sent or received any more, so the compression
        codec and its zlib state are released now, not when the connection object goes."""
        self.state = State.CLOSED
        self.deflate = None

    @property
    def closed(self) -> bool:
        """Whether the connection is closed for reading and writing."""
        return self.state is State.CLOSED

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, limit: int | None = None) -> list[Event]:
        """Parse received bytes; return the messages and control events they complete.

        With ``limit``, parsing stops once that many messages are complete: the bytes after
        them stay buffered, unparsed (a compressed message is not even inflated), until a
        later call (``receive_data(b"", limit)`` resumes). This is how a reader that queues
        at most N messages bounds what one socket read can cost it.
        """
        if self.state is State.CLOSED or self.failure is not None:
            return []
        events: list[Event] = []
        produced = 0
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        n = len(buf)
        pos = 0
        expect = self._expect_mask
        try:
            while n - pos >= 2:
                if limit is not None and produced >= limit:
                    break
                result = parse_frame(buf, pos, expect, self.max_message_size - self._frag_size)
                if result is None:
                    self._incomplete(buf, pos, n)
                    break
                if result.__class__ is int:
                    raise ProtocolError(*VIOLATIONS[result])
                b0, payload, pos = result  # type: ignore[misc]
                if self._partial is not None:
                    self._partial = None
                    self._partial_done = 0
                if b0 == 0x81 and not self._frag_opcode:  # whole, uncompressed text: the hot path
                    try:
                        events.append(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        raise ProtocolError(1007, "text message is not valid UTF-8") from None
                    produced += 1
                elif b0 == 0x82 and not self._frag_opcode:
                    events.append(payload)
                    produced += 1
                else:
                    before = len(events)
                    self._handle_frame(b0, b0 & 0x0F, payload, events)
                    if len(events) > before and type(events[-1]) in (str, bytes):
                        produced += 1
                    if self.closed:
                        break
        except ProtocolError as exc:
            if self.defer_failure and self.state is State.OPEN:
                self.failure = (exc.code, exc.reason)
                self._buf = bytearray()
                events.append(Closed(exc.code, exc.reason))
                return events
            self._fail(exc.code, exc.reason, events)
        if self.closed:
            self._buf = bytearray()
        elif buf is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(buf[pos:])
        return events

    def _incomplete(self, buf: bytes | bytearray, pos: int, n: int) -> None:
        """The frame at ``pos`` is not complete: check the text it carries so far."""
        b0 = buf[pos]
        if not self._is_plain_text(b0, b0 & 0x0F):
            return
        length = buf[pos + 1] & 0x7F
        start = pos + 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if self._expect_mask:
            if n > start + 4:
                self._check_partial_text(buf, start + 4, n, buf[start : start + 4])
        elif n > start:
            self._check_partial_text(buf, start, n, None)

    def _is_plain_text(self, b0: int, opcode: int) -> bool:
        """Whether an incomplete frame carries uncompressed text that can be checked early."""
        if b0 & 0x70:
            return False
        return opcode == Opcode.TEXT or (
            opcode == Opcode.CONTINUATION
            and self._frag_opcode == Opcode.TEXT
            and not self._compressed
        )

    def _check_partial_text(
        self, buf: bytes | bytearray, start: int, n: int, mask: bytes | bytearray | None
    ) -> None:
        """Validate the UTF-8 of a text frame's payload received so far, so that invalid
        text fails fast (RFC 6455 section 8.1) even before the frame is complete."""
        if self._partial is None:
            self._partial = _Utf8Decoder()
            if self._decoder is not None:
                self._partial.setstate(self._decoder.getstate())
            self._partial_done = 0
        done = self._partial_done
        chunk = buf[start + done : n]
        if mask is not None:
            k = done % 4
            chunk = apply_mask(chunk, bytes(mask[k:]) + bytes(mask[:k]))
        self._partial_done = n - start
        try:
            self._partial.decode(bytes(chunk), False)
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text message is not valid UTF-8") from None

    def receive_eof(self) -> list[Event]:
        """The stream ended; report 1006 unless the close handshake already finished."""
        if self.state is State.CLOSED:
            return []
        if self.failure is not None:  # Closed was reported with the failure
            self._set_closed()
            self.close_code = self.failure[0]
            return []
        self._set_closed()
        self.close_code = CloseCode.ABNORMAL
        return [Closed(CloseCode.ABNORMAL, "")]

    def _handle_frame(self, b0: int, opcode: int, payload: bytes, events: list[Event]) -> None:
        if b0 & 0x30 or (b0 & 0x40 and (self.deflate is None or opcode not in (1, 2))):
            raise ProtocolError(1002, "reserved bits set without a negotiated extension")
        fin = bool(b0 & 0x80)
        if opcode == Opcode.TEXT or opcode == Opcode.BINARY:
            if self._frag_opcode:
                raise ProtocolError(1002, "new message before the previous one ended")
            self._frag_opcode = opcode
            self._compressed = bool(b0 & 0x40)
            self._append_fragment(payload, fin, events)
        elif opcode == Opcode.CONTINUATION:
            if not self._frag_opcode:
                raise ProtocolError(1002, "continuation frame without a message to continue")
            self._append_fragment(payload, fin, events)
        elif opcode == Opcode.CLOSE:
            self._receive_close(payload, events)
        elif opcode == Opcode.PING:
            if self.state is State.OPEN:
                if self.coalesce_pongs:
                    self.unanswered_ping = payload
                else:
                    self._out.append(self._frame(Opcode.PONG, payload))
            events.append(Ping(payload))
        elif opcode == Opcode.PONG:
            events.append(Pong(payload))
        else:
            raise ProtocolError(1002, f"reserved opcode {opcode:#x}")

    def _append_fragment(self, payload: bytes, fin: bool, events: list[Event]) -> None:
        if self._compressed:
            assert self.deflate is not None
            payload = self.deflate.decompress(
                payload, final=fin, max_size=self.max_message_size - self._frag_size
            )
        self._frag_size += len(payload)
        message: str | bytes
        if self._frag_opcode == Opcode.TEXT:
            if fin and self._decoder is None:
                try:
                    message = payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "text message is not valid UTF-8") from None
            else:
                if self._decoder is None:
                    self._decoder = _Utf8Decoder()
                try:
                    self._decoder.decode(payload, fin)  # validates as it comes: fails fast
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "text message is not valid UTF-8") from None
                self._frag += payload
                if not fin:
                    return
                message = self._frag.decode("utf-8")  # valid: checked piece by piece
        else:
            if not fin:
                self._frag += payload
                return
            message = bytes(self._frag + payload) if self._frag else payload
        events.append(message)  # also while CLOSING: the peer sent it before our close
        self._frag_opcode = 0
        self._frag_size = 0
        self._frag = bytearray()
        self._decoder = None
        self._compressed = False

    def _receive_close(self, payload: bytes, events: list[Event]) -> None:
        code, reason = decode_close_payload(payload)
        if self.state is State.OPEN:
            # Echo the status code (RFC 6455 section 5.5.1), then the server closes the TCP.
            echo = payload[:2] if code != CloseCode.NO_STATUS else b""
            self._out.append(self._frame(Opcode.CLOSE, echo))
            self.close_sent = True
            self.peer_closed_first = True
        self._set_closed()
        self.close_code = code
        self.close_reason = reason
        events.append(Closed(code, reason))

    def _fail(self, code: int, reason: str, events: list[Event]) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): send a close frame, then close."""
        if self.state is State.OPEN:
            # The reason is cut to fit the 125-byte control frame (section 5.5), on a character.
            fitted = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self._out.append(self._frame(Opcode.CLOSE, encode_close_payload(code, fitted)))
            self.close_sent = True
        self._set_closed()
        self.close_code = code
        self.close_reason = reason
        events.append(Closed(code, reason))

    def fail(self, code: int, reason: str = "") -> list[Event]:
        """Fail the connection (a deferred ``failure``, a timeout, a policy): queue the close
        frame and close; return the events."""
        if self.state is State.CLOSED:
            return []
        events: list[Event] = []
        self._fail(code, reason, events)
        return events

    def pending_pong(self) -> bytes:
        """The pong for ``unanswered_ping`` (b"" when none is owed or the connection is no
        longer open, as nothing may follow a close frame); the ping counts as answered."""
        payload, self.unanswered_ping = self.unanswered_ping, None
        if payload is None or self.state is not State.OPEN:
            return b""
        return self._frame(Opcode.PONG, payload)

    def data_to_send(self) -> bytes:
        """Bytes the connection produced by itself (pongs, close replies), to be written."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out = []
        return out

    # -- sending -----------------------------------------------------------------------------

    def _frame(self, opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
        mask = os.urandom(4) if self.client else None
        return encode_frame(opcode, payload, rsv1=rsv1, mask=mask)

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise InvalidState(f"cannot send: the connection is {self.state.value}")

    def _data_frame(self, opcode: int, data: bytes) -> bytes:
        deflate = self.deflate
        if deflate is not None and len(data) >= deflate.threshold:
            return self._frame(opcode, deflate.compress(data), rsv1=True)
        return self._frame(opcode, data)

    def send_text(self, text: str) -> bytes:
        """The bytes of a text message."""
        self._check_open()
        return self._data_frame(Opcode.TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> bytes:
        """The bytes of a binary message."""
        self._check_open()
        return self._data_frame(Opcode.BINARY, bytes(data))

    def send_shared(self, message: SharedMessage) -> bytes:
        """The bytes of a message sent to many connections: its shared frame (or shared
        compressed frame) where this connection can take it, else a frame of its own."""
        self._check_open()
        deflate = self.deflate
        if self.client:  # a client masks every frame: nothing can be shared
            return self._data_frame(message.opcode, message.payload)
        if deflate is None or len(message.payload) < deflate.threshold:
            return message.frame
        if deflate.shared_deflater is None:
            return self._frame(message.opcode, deflate.compress(message.payload), rsv1=True)
        return message.compressed_frame(deflate.shared_deflater)

    def send_ping(self, payload: bytes = b"") -> bytes:
        """The bytes of a ping; ``payload`` is at most 125 bytes."""
        self._check_open()
        if len(payload) > 125:
            raise ValueError("ping payload is over 125 bytes")
        return self._frame(Opcode.PING, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """The bytes of an unsolicited pong; ``payload`` is at most 125 bytes."""
        self._check_open()
        if len(payload) > 125:
            raise ValueError("pong payload is over 125 bytes")
        return self._frame(Opcode.PONG, payload)

    def send_close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
        """Start the close handshake; b"" when a close frame was already sent (idempotent)."""
        if code != CloseCode.NO_STATUS and not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code}")
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        self.close_sent = True
        self.close_code = code
        self.close_reason = reason
        return self._frame(Opcode.CLOSE, encode_close_payload(code, reason))
