"""RFC 6455 section 4: validating an opening handshake and building the 101 response."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Final

from roost.protocol.deflate import DEFAULT_SETTINGS, DeflateParams, DeflateSettings, negotiate
from roost.protocol.errors import HandshakeError
from roost.protocol.http import Headers, header_line, is_token, status_line

GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(headers: Headers, name: str) -> list[str]:
    return [t.strip().lower() for v in headers.get_all(name) for t in v.split(",") if t.strip()]


def is_upgrade_request(headers: Headers) -> bool:
    """Whether the request asks to switch to the WebSocket protocol."""
    return "websocket" in _tokens(headers, "upgrade")


def validate_request(method: str, headers: Headers, http_version: str = "1.1") -> str:
    """Check an upgrade request (section 4.2.1) and return its ``Sec-WebSocket-Key``.

    Raises HandshakeError: 400 for a malformed request, 426 for an unsupported version.
    """
    if method != "GET":
        raise HandshakeError(400, "a WebSocket handshake must use GET")
    if http_version in ("0.9", "1.0"):
        raise HandshakeError(400, "a WebSocket handshake must use HTTP/1.1")
    if "websocket" not in _tokens(headers, "upgrade"):
        raise HandshakeError(400, "missing 'Upgrade: websocket' header")
    if "upgrade" not in _tokens(headers, "connection"):
        raise HandshakeError(400, "missing 'Connection: Upgrade' header")
    version = headers.get("sec-websocket-version")
    if version is None:
        raise HandshakeError(
            400, "missing Sec-WebSocket-Version header", [("Sec-WebSocket-Version", "13")]
        )
    if version.strip() != "13":
        raise HandshakeError(
            426, f"unsupported WebSocket version {version!r}", [("Sec-WebSocket-Version", "13")]
        )
    keys = headers.get_all("sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "missing or repeated Sec-WebSocket-Key header")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes in base64")
    return key


def check_subprotocols(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, once each is checked to be a token (RFC 6455 section 4.1);
    raises ValueError for one that is not, so that it cannot break the 101 response."""
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not is_token(name):
            raise ValueError(f"WebSocket subprotocol {name!r} is not an RFC 9110 token")
    return names


def select_subprotocol(headers: Headers, supported: list[str] | tuple[str, ...]) -> str | None:
    """The first of the server's ``supported`` subprotocols that the client offered."""
    if not supported:
        return None
    offered = [
        t.strip()
        for v in headers.get_all("sec-websocket-protocol")
        for t in v.split(",")
        if t.strip()
    ]
    for name in supported:
        if name in offered:
            return name
    return None


def select_deflate(
    headers: Headers, settings: DeflateSettings = DEFAULT_SETTINGS
) -> DeflateParams | None:
    """The permessage-deflate parameters to agree to on the server's ``settings``, or None
    when no acceptable offer was made."""
    values = headers.get_all("sec-websocket-extensions")
    return negotiate(values, settings) if values else None


def accept_response(
    key: str,
    *,
    subprotocol: str | None = None,
    deflate: DeflateParams | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
) -> bytes:
    """The bytes of the ``101 Switching Protocols`` response.

    Raises InvalidResponse for a header that could break the response (see ``header_line``).
    """
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if deflate is not None:
        headers.append(("Sec-WebSocket-Extensions", deflate.response_header()))
    headers += extra_headers or ()
    return b"".join([status_line(101), *(header_line(n, v) for n, v in headers), b"\r\n"])
