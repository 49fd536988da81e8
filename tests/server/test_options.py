"""WebSocketOptions and ServerOptions: finite defaults, keyword-only, frozen, and a clear error
for every value that cannot work."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from roost.protocol.deflate import DeflateSettings
from roost.server.options import ServerOptions, WebSocketOptions


def test_defaults() -> None:
    ws = WebSocketOptions()
    assert (ws.max_message_size, ws.max_queue, ws.write_limit) == (1_048_576, 32, 65_536)
    assert (ws.max_outbound_buffer, ws.slow_consumer) == (4 * 1024 * 1024, "close")
    assert (ws.ping_interval, ws.ping_timeout, ws.idle_timeout) == (20.0, 20.0, None)
    assert (ws.close_timeout, ws.compression) == (10.0, True)
    assert (ws.compression_threshold, ws.compression_idle_timeout) == (256, 30.0)
    assert (ws.server_no_context_takeover, ws.client_no_context_takeover) == (True, True)
    assert (ws.server_max_window_bits, ws.client_max_window_bits) == (12, 12)
    assert (ws.compression_level, ws.compression_mem_level) == (6, 5)
    assert ws.deflate_settings() == DeflateSettings()
    server = ServerOptions()
    assert (server.max_header_size, server.max_header_count) == (16 * 1024, 100)
    assert server.max_body_size == 10 * 1024 * 1024
    assert (server.handshake_timeout, server.keep_alive_timeout) == (10.0, 5.0)
    assert (server.max_connections, server.max_connections_per_ip) == (50_000, None)
    assert server.shutdown_timeout == 10.0


@pytest.mark.parametrize("cls", [WebSocketOptions, ServerOptions])
def test_keyword_only_and_frozen(cls: type[WebSocketOptions] | type[ServerOptions]) -> None:
    with pytest.raises(TypeError):
        cls(1)  # type: ignore[misc]
    options = cls()
    for field in dataclasses.fields(options):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(options, field.name, getattr(options, field.name))


def test_timers_may_be_turned_off() -> None:
    options = WebSocketOptions(ping_interval=None, ping_timeout=None, idle_timeout=None)
    assert options.ping_interval is None
    assert ServerOptions(max_connections_per_ip=None, max_body_size=0).max_body_size == 0
    assert ServerOptions(shutdown_timeout=0).shutdown_timeout == 0  # drop everything at once


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_message_size", 0),
        ("max_message_size", -1),
        ("max_queue", 0),
        ("write_limit", 0),
        ("max_outbound_buffer", 0),
        ("ping_interval", 0),
        ("ping_interval", -5.0),
        ("ping_timeout", 0),
        ("idle_timeout", -1),
        ("idle_timeout", math.nan),
        ("close_timeout", 0),
        ("close_timeout", None),
        ("max_queue", "32"),
        ("max_queue", True),
    ],
)
def test_websocket_option_out_of_range(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"WebSocketOptions.{name} must be"):
        WebSocketOptions(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("compression", 1),
        ("compression_threshold", -1),
        ("compression_threshold", 1.5),
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", "yes"),
        ("server_max_window_bits", 8),
        ("client_max_window_bits", 16),
        ("compression_level", 0),
        ("compression_mem_level", 10),
        ("compression_idle_timeout", 0),
        ("compression_idle_timeout", math.inf),
    ],
)
def test_compression_option_out_of_range(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"WebSocketOptions.{name} must be .*, not {value!r}"):
        WebSocketOptions(**{name: value})  # type: ignore[arg-type]


def test_compression_options_give_its_settings() -> None:
    options = WebSocketOptions(compression_level=1, server_no_context_takeover=False)
    assert options.deflate_settings() == DeflateSettings(
        compression_level=1, server_no_context_takeover=False
    )


def test_slow_consumer_policy_must_be_known() -> None:
    with pytest.raises(ValueError, match="slow_consumer must be 'close' or 'drop'"):
        WebSocketOptions(slow_consumer="block")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_header_size", 0),
        ("max_header_count", 0),
        ("max_body_size", -1),
        ("handshake_timeout", 0),
        ("handshake_timeout", None),
        ("keep_alive_timeout", -1),
        ("max_connections", 0),
        ("max_connections_per_ip", 0),
        ("shutdown_timeout", -1),
        ("shutdown_timeout", math.inf * 0),
        ("max_connections", "many"),
    ],
)
def test_server_option_out_of_range(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"ServerOptions.{name} must be"):
        ServerOptions(**{name: value})  # type: ignore[arg-type]


def test_error_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"ServerOptions.max_connections must be .*, not -3"):
        ServerOptions(max_connections=-3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"liveness_path": "livez"}, "liveness_path must be a path starting with '/'"),
        ({"readiness_path": "/ready?x"}, "readiness_path must be a path without a query"),
        ({"liveness_path": "/x", "readiness_path": "/x"}, "must differ"),
    ],
)
def test_health_paths(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServerOptions(**options)  # type: ignore[arg-type]
    assert ServerOptions(liveness_path=None, readiness_path=None).readiness_path is None
