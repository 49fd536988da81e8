"""roost.protocol.handshake: RFC 6455 section 4, the opening handshake, server side."""

from __future__ import annotations

import pytest

from roost.protocol.deflate import DeflateParams, DeflateSettings
from roost.protocol.errors import HandshakeError, InvalidResponse
from roost.protocol.handshake import (
    GUID,
    accept_key,
    accept_response,
    check_subprotocols,
    is_upgrade_request,
    select_deflate,
    select_subprotocol,
    validate_request,
)
from roost.protocol.http import Headers

# Section 1.3's example.
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

GOOD = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", SAMPLE_KEY),
    ("Sec-WebSocket-Version", "13"),
]


def headers(*, drop: str = "", **replace: str) -> Headers:
    """GOOD without ``drop`` and with ``replace`` (underscores for dashes) applied."""
    swap = {k.replace("_", "-").lower(): v for k, v in replace.items()}
    out = [(n, swap.pop(n.lower(), v)) for n, v in GOOD if n.lower() != drop.lower()]
    return Headers(out + [(n, v) for n, v in swap.items()])


def rejection(method: str, hdrs: Headers) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        validate_request(method, hdrs)
    return info.value


class TestAcceptKey:
    def test_rfc_example(self) -> None:
        """Section 1.3: "dGhlIHNhbXBsZSBub25jZQ==" + the GUID, SHA-1, base64."""
        assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        assert accept_key(SAMPLE_KEY) == SAMPLE_ACCEPT


class TestValidateRequest:
    def test_valid_request_returns_the_key(self) -> None:
        assert validate_request("GET", headers()) == SAMPLE_KEY

    def test_tokens_are_case_insensitive_lists(self) -> None:
        """Section 4.2.1: Upgrade includes "websocket" and Connection includes "Upgrade",
        both case-insensitive, possibly among other tokens or repeated headers."""
        hdrs = headers(
            upgrade="h2c, WebSocket",
            connection="keep-alive, UPGRADE",
            sec_websocket_key=f"  {SAMPLE_KEY} ",
            sec_websocket_version=" 13 ",
        )
        assert validate_request("GET", hdrs) == SAMPLE_KEY
        split = Headers(
            [
                *GOOD[:1],
                ("Connection", "keep-alive"),
                ("Connection", "upgrade"),
                *GOOD[1:2],
                *GOOD[3:],
            ]
        )
        assert validate_request("GET", split) == SAMPLE_KEY

    @pytest.mark.parametrize("method", ["POST", "HEAD", "get", "PUT"])
    def test_method_must_be_get(self, method: str) -> None:
        """Section 4.2.1, item 1: an HTTP/1.1 or higher GET request."""
        exc = rejection(method, headers())
        assert (exc.status, exc.reason) == (400, "a WebSocket handshake must use GET")

    @pytest.mark.parametrize("version", ["1.0", "0.9"])
    def test_http_11_or_higher_is_required(self, version: str) -> None:
        """Section 4.2.1, item 1: HTTP/1.0 has no Upgrade."""
        with pytest.raises(HandshakeError) as info:
            validate_request("GET", headers(), version)
        assert (info.value.status, info.value.reason) == (
            400,
            "a WebSocket handshake must use HTTP/1.1",
        )
        assert validate_request("GET", headers(), "1.1") == SAMPLE_KEY

    @pytest.mark.parametrize("value", [None, "", "h2c", "websockets", "web socket"])
    def test_upgrade_websocket_is_required(self, value: str | None) -> None:
        """Section 4.2.1, item 3."""
        hdrs = headers(drop="upgrade") if value is None else headers(upgrade=value)
        exc = rejection("GET", hdrs)
        assert (exc.status, exc.reason) == (400, "missing 'Upgrade: websocket' header")

    @pytest.mark.parametrize("value", [None, "", "keep-alive", "upgraded"])
    def test_connection_upgrade_is_required(self, value: str | None) -> None:
        """Section 4.2.1, item 4."""
        hdrs = headers(drop="connection") if value is None else headers(connection=value)
        exc = rejection("GET", hdrs)
        assert (exc.status, exc.reason) == (400, "missing 'Connection: Upgrade' header")

    def test_missing_version_is_400_naming_13(self) -> None:
        """Section 4.2.1, item 6; section 4.4: the server names the versions it supports."""
        exc = rejection("GET", headers(drop="sec-websocket-version"))
        assert (exc.status, exc.reason) == (400, "missing Sec-WebSocket-Version header")
        assert exc.headers == [("Sec-WebSocket-Version", "13")]

    @pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", ""])
    def test_other_version_is_426_naming_13(self, version: str) -> None:
        """Section 4.4: a version the server does not understand gets 426 Upgrade Required
        and a Sec-WebSocket-Version header with the versions it does."""
        exc = rejection("GET", headers(sec_websocket_version=version))
        assert (exc.status, exc.reason) == (426, f"unsupported WebSocket version {version!r}")
        assert exc.headers == [("Sec-WebSocket-Version", "13")]

    def test_key_is_required_once(self) -> None:
        """Section 4.2.1, item 5: exactly one Sec-WebSocket-Key (section 11.3.1: it MUST NOT
        appear more than once)."""
        for hdrs in [
            headers(drop="sec-websocket-key"),
            Headers([*GOOD, ("Sec-WebSocket-Key", SAMPLE_KEY)]),
        ]:
            exc = rejection("GET", hdrs)
            assert (exc.status, exc.reason) == (400, "missing or repeated Sec-WebSocket-Key header")

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "not base64!",
            "dGhlIHNhbXBsZSBub25jZQ",  # padding missing
            "dGhlIHNhbXBsZSBub25j",  # 15 bytes
            "dGhlIHNhbXBsZSBub25jZSE=",  # 17 bytes
            "dGhlIHNhbXBsZSBub25jZQ==dGhl",
            "dGhlIHNhbXBsZSBub25jZé==",  # not ASCII
        ],
    )
    def test_key_must_be_16_bytes_in_base64(self, key: str) -> None:
        """Section 4.2.1, item 5: a base64-encoded value that, decoded, is 16 bytes long."""
        exc = rejection("GET", headers(sec_websocket_key=key))
        assert (exc.status, exc.reason) == (400, "Sec-WebSocket-Key is not 16 bytes in base64")


class TestIsUpgradeRequest:
    def test_detects_the_websocket_token(self) -> None:
        assert is_upgrade_request(headers())
        assert is_upgrade_request(Headers([("upgrade", "foo, WebSocket")]))
        assert not is_upgrade_request(Headers([("Upgrade", "h2c")]))
        assert not is_upgrade_request(Headers([("Host", "x")]))


class TestSubprotocol:
    def test_the_servers_preference_wins(self) -> None:
        """Section 4.2.2, item 5.4: the server picks one of the client's values (or none)."""
        hdrs = headers(sec_websocket_protocol="chat, superchat")
        assert select_subprotocol(hdrs, ["superchat", "chat"]) == "superchat"
        assert select_subprotocol(hdrs, ("v2", "chat")) == "chat"

    def test_offers_across_repeated_headers(self) -> None:
        hdrs = Headers(
            [*GOOD, ("Sec-WebSocket-Protocol", "a, ,"), ("Sec-WebSocket-Protocol", " b ")]
        )
        assert select_subprotocol(hdrs, ["b"]) == "b"

    def test_none_when_nothing_matches(self) -> None:
        hdrs = headers(sec_websocket_protocol="chat")
        assert select_subprotocol(hdrs, ["Chat", "other"]) is None  # tokens match exactly
        assert select_subprotocol(headers(), ["chat"]) is None
        assert select_subprotocol(hdrs, []) is None


class TestCheckSubprotocols:
    def test_tokens_pass_as_a_tuple(self) -> None:
        """Section 4.1: each subprotocol is a token (RFC 2616's, now RFC 9110's)."""
        assert check_subprotocols(["chat", "v2.json"]) == ("chat", "v2.json")
        assert check_subprotocols(iter(["a"])) == ("a",)
        assert check_subprotocols([]) == ()

    @pytest.mark.parametrize("name", ["", "two words", "a,b", "x\r\nX-Evil: 1", "é", 3])
    def test_non_tokens_are_refused(self, name: object) -> None:
        with pytest.raises(ValueError, match="is not an RFC 9110 token"):
            check_subprotocols(["chat", name])  # type: ignore[list-item]


class TestSelectDeflate:
    def test_no_offer(self) -> None:
        assert select_deflate(headers()) is None

    def test_offers_across_headers(self) -> None:
        """RFC 7692 section 5: the first acceptable offer, in the order received."""
        hdrs = Headers(
            [
                *GOOD,
                ("Sec-WebSocket-Extensions", "x-foo"),
                ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10"),
            ]
        )
        assert select_deflate(hdrs) == DeflateParams(True, True, 10, 15)

    def test_on_the_servers_settings(self) -> None:
        """Chromium's offer, answered on the default settings and on settings given."""
        hdrs = headers(sec_websocket_extensions="permessage-deflate; client_max_window_bits")
        assert select_deflate(hdrs) == DeflateParams(True, True, 12, 12)
        settings = DeflateSettings(
            server_no_context_takeover=False,
            client_no_context_takeover=False,
            server_max_window_bits=15,
            client_max_window_bits=10,
        )
        assert select_deflate(hdrs, settings) == DeflateParams(False, False, 15, 10)

    def test_only_unacceptable_offers(self) -> None:
        hdrs = headers(sec_websocket_extensions="permessage-deflate; bogus")
        assert select_deflate(hdrs) is None


class TestAcceptResponse:
    def test_minimal_101(self) -> None:
        """Section 4.2.2, item 5 and section 1.3's example."""
        assert accept_response(SAMPLE_KEY) == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"\r\n"
        )

    def test_subprotocol_extension_and_extra_headers(self) -> None:
        response = accept_response(
            SAMPLE_KEY,
            subprotocol="chat",
            deflate=DeflateParams(client_no_context_takeover=True),
            extra_headers=[("X-Node", "a")],
        )
        assert response.endswith(
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: chat\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
            b"X-Node: a\r\n"
            b"\r\n"
        )

    @pytest.mark.parametrize(
        "extra", [("X-A", "1\r\nX-Evil: 2"), ("X A", "1")], ids=["value", "name"]
    )
    def test_header_that_would_break_the_response_is_refused(self, extra: tuple[str, str]) -> None:
        with pytest.raises(InvalidResponse):
            accept_response(SAMPLE_KEY, extra_headers=[extra])
        with pytest.raises(InvalidResponse):
            accept_response(SAMPLE_KEY, subprotocol="a\r\nb")
