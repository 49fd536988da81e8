"""roost.protocol.errors: one hierarchy, each exception carrying what its handler answers with."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from roost.protocol import errors
from roost.protocol.errors import (
    ClientDisconnected,
    HandshakeError,
    HttpError,
    InvalidResponse,
    InvalidState,
    ProtocolError,
    RoostError,
    WebSocketDisconnect,
)


@pytest.mark.parametrize(
    "cls",
    [
        ProtocolError,
        HandshakeError,
        HttpError,
        InvalidResponse,
        InvalidState,
        WebSocketDisconnect,
        ClientDisconnected,
    ],
)
def test_every_exception_is_a_roost_error(cls: type[Exception]) -> None:
    assert issubclass(cls, RoostError)
    assert issubclass(RoostError, Exception)


def test_invalid_response_is_a_value_error() -> None:
    """A bad response is the app's mistake with a value, raised before anything is sent."""
    assert issubclass(InvalidResponse, RoostError) and issubclass(InvalidResponse, ValueError)
    assert str(InvalidResponse("bad header")) == "bad header"


def test_protocol_error_carries_the_close_code() -> None:
    exc = ProtocolError(1002, "reserved opcode 0x3")
    assert (exc.code, exc.reason) == (1002, "reserved opcode 0x3")
    assert str(exc) == "reserved opcode 0x3 (close code 1002)"


def test_handshake_error_carries_status_and_headers() -> None:
    exc = HandshakeError(426, "unsupported version", [("Sec-WebSocket-Version", "13")])
    assert (exc.status, exc.reason) == (426, "unsupported version")
    assert exc.headers == [("Sec-WebSocket-Version", "13")]
    assert str(exc) == "426: unsupported version"
    assert HandshakeError(400, "bad").headers == []


def test_http_error_carries_the_status() -> None:
    exc = HttpError(431, "request header fields too large")
    assert (exc.status, exc.reason) == (431, "request header fields too large")
    assert str(exc) == "431: request header fields too large"


def test_websocket_disconnect_defaults_and_message() -> None:
    assert (WebSocketDisconnect().code, WebSocketDisconnect().reason) == (1000, "")
    assert str(WebSocketDisconnect()) == "WebSocket closed with code 1000"
    exc = WebSocketDisconnect(1001, "going away")
    assert (exc.code, exc.reason) == (1001, "going away")
    assert str(exc) == "WebSocket closed with code 1001: going away"


def test_errors_module_imports_nothing() -> None:
    """Every layer may import it, so it must not import any of them."""
    tree = ast.parse(Path(errors.__file__).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in imports] == ["from __future__ import annotations"]
