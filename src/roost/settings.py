"""Where and how to serve: the server flags, the ``ROOST_*`` environment and code defaults.

One definition of the flags serves every entry point: ``roost module:app``,
``python -m roost module:app`` and ``app.start()`` (which reads ``sys.argv``). Code defaults
are overridden by the environment, which is overridden by the flags. Every value is checked
the same way wherever it comes from, and a bad one is a clear error, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from roost.hub.credentials import redacted

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
#: Words a boolean environment variable (``ROOST_ACCESS_LOG=1``) may hold.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
#: Longest ``--drain-delay`` accepted (s).
MAX_DRAIN_DELAY = 3600.0
#: What a ``--broker`` URL may start with (the schemes ``roost.app.make_broker`` knows).
BROKER_SCHEMES = ("redis://", "rediss://", "unix://")


class SettingsError(ValueError):
    """A setting has a value roost cannot use; the message names the setting and the value."""


@dataclass(frozen=True)
class Settings:
    """Server settings, each with its default.

    - ``host``: the address to bind (``"127.0.0.1"``; ``"0.0.0.0"`` for every interface).
    - ``port``: the TCP port (8080; 0 picks a free one).
    - ``processes``: worker processes sharing the port (1: serve in this process).
    - ``broker``: a ``redis://`` URL shared by several servers (None: no broker).
    - ``log_level``: one of DEBUG, INFO, WARNING, ERROR, CRITICAL (``"INFO"``).
    - ``reload``: restart the server when a source file changes (False; for development).
    - ``ssl_certfile``: a PEM certificate chain: serve ``https://`` and ``wss://`` (None:
      plain HTTP). ``ssl_keyfile``: its private key, if not in the same file (None).
      ``ssl_ca_certs``: PEM CA certificates; when given, every client must present a
      certificate they signed (None: no client certificates).
    - ``drain_delay``: seconds between the first stop request and closing connections, while
      the server keeps serving and its readiness endpoint answers 503 (0).
    - ``log_format``: ``"text"`` or ``"json"`` (one JSON object per line) (``"text"``).
    - ``access_log``: one line per HTTP request in the common log format (False).
    - ``session_log``: one line per WebSocket session end (True).
    - ``metrics``: answer Prometheus scrapes at ``/metrics`` (False; ``metrics_path`` in
      ``ServerOptions`` chooses another path); needs the ``metrics`` extra.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    processes: int = 1
    broker: str | None = None
    log_level: str = "INFO"
    reload: bool = False
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_ca_certs: str | None = None
    drain_delay: float = 0.0
    log_format: str = "text"
    access_log: bool = False
    session_log: bool = True
    metrics: bool = False


def port_number(text: str) -> int:
    """A TCP port from 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid port {text!r}: expected a number from 0 to 65535"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: expected 0 to 65535")
    return port


def process_count(text: str) -> int:
    """A number of worker processes, at least 1."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid process count {text!r}: expected a whole number, at least 1"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"invalid process count {count}: must be at least 1")
    return count


def _one_of(what: str, text: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: expected one of {', '.join(choices)}"
        )
    return value


def log_level(text: str) -> str:
    """A logging level name, in any case."""
    return _one_of("log level", text, text.strip().upper(), LOG_LEVELS)


def host_name(text: str) -> str:
    """An address to bind: not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("invalid host '': expected an address such as 127.0.0.1")
    return text.strip()


def broker_url(text: str) -> str:
    """A Redis URL: redis://, rediss:// or unix://."""
    if not text.startswith(BROKER_SCHEMES):
        raise argparse.ArgumentTypeError(
            f"invalid broker URL {redacted(text)!r}: expected redis://host:port/db "
            "(or rediss://, unix://)"
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid broker URL {redacted(text)!r}: {exc}") from None
    if not text.startswith("unix://") and not parts.hostname:
        raise argparse.ArgumentTypeError(f"invalid broker URL {redacted(text)!r}: no host")
    return text


def readable_file(text: str) -> str:
    """The path of a file that exists and can be read."""
    if not text.strip():
        raise argparse.ArgumentTypeError("invalid file '': expected a path")
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: {exc.strerror}") from None
    return text


def seconds(text: str) -> float:
    """A duration in seconds, from 0 to ``MAX_DRAIN_DELAY``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number of seconds"
        ) from None
    if not 0 <= value <= MAX_DRAIN_DELAY:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected 0 to {MAX_DRAIN_DELAY:.0f} seconds"
        )
    return value


def log_format(text: str) -> str:
    """``text`` or ``json``, in any case."""
    return _one_of("log format", text, text.strip().lower(), LOG_FORMATS)


def switch(text: str) -> bool:
    """A boolean from the environment: 1/true/yes/on or 0/false/no/off."""
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"invalid switch {text!r}: expected 1 or 0 (or true, false)")


#: setting -> (flag, environment variable or None, parser of a text value)
_SOURCES: dict[str, tuple[str, str | None, Callable[[str], Any]]] = {
    "host": ("--host", "ROOST_HOST", host_name),
    "port": ("--port", "ROOST_PORT", port_number),
    "processes": ("--processes", "ROOST_PROCESSES", process_count),
    "broker": ("--broker", "ROOST_BROKER", broker_url),
    "log_level": ("--log-level", "ROOST_LOG_LEVEL", log_level),
    "reload": ("--reload", None, bool),
    "ssl_certfile": ("--ssl-certfile", "ROOST_SSL_CERTFILE", readable_file),
    "ssl_keyfile": ("--ssl-keyfile", "ROOST_SSL_KEYFILE", readable_file),
    "ssl_ca_certs": ("--ssl-ca-certs", "ROOST_SSL_CA_CERTS", readable_file),
    "drain_delay": ("--drain-delay", "ROOST_DRAIN_DELAY", seconds),
    "log_format": ("--log-format", "ROOST_LOG_FORMAT", log_format),
    "access_log": ("--access-log", "ROOST_ACCESS_LOG", switch),
    "session_log": ("--session-log", "ROOST_SESSION_LOG", switch),
    "metrics": ("--metrics", "ROOST_METRICS", switch),
}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add the server flags to ``parser``; a flag not given parses as None."""
    group = parser.add_argument_group("server")
    group.add_argument("--host", type=host_name, help="address to bind (127.0.0.1; env ROOST_HOST)")
    group.add_argument(
        "--port", type=port_number, help="port to bind, 0 for a free one (8080; env ROOST_PORT)"
    )
    group.add_argument(
        "--processes",
        type=process_count,
        metavar="N",
        help="worker processes sharing the port (1; env ROOST_PROCESSES)",
    )
    group.add_argument(
        "--broker",
        type=broker_url,
        metavar="URL",
        help="redis:// URL of a broker shared by several servers (env ROOST_BROKER)",
    )
    group.add_argument(
        "--log-level",
        type=log_level,
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (INFO; env ROOST_LOG_LEVEL)",
    )
    group.add_argument(
        "--reload",
        action="store_const",
        const=True,
        help="restart when a file under the current directory changes (development)",
    )
    tls = parser.add_argument_group("TLS (https:// and wss://)")
    tls.add_argument(
        "--ssl-certfile",
        type=readable_file,
        metavar="PATH",
        help="PEM certificate chain; serve TLS on the port (env ROOST_SSL_CERTFILE)",
    )
    tls.add_argument(
        "--ssl-keyfile",
        type=readable_file,
        metavar="PATH",
        help="PEM private key, if not in the certificate file (env ROOST_SSL_KEYFILE)",
    )
    tls.add_argument(
        "--ssl-ca-certs",
        type=readable_file,
        metavar="PATH",
        help="PEM CA certificates: require client certificates they signed "
        "(env ROOST_SSL_CA_CERTS)",
    )
    ops = parser.add_argument_group("draining and logs")
    ops.add_argument(
        "--drain-delay",
        type=seconds,
        metavar="SECONDS",
        help="after SIGTERM, report unready and keep serving this long before closing "
        "connections (0; env ROOST_DRAIN_DELAY)",
    )
    ops.add_argument(
        "--log-format",
        type=log_format,
        metavar="FORMAT",
        help="text or json, one object per line (text; env ROOST_LOG_FORMAT)",
    )
    ops.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        help="one line per HTTP request, common log format (off; env ROOST_ACCESS_LOG)",
    )
    ops.add_argument(
        "--session-log",
        action=argparse.BooleanOptionalAction,
        help="one line per WebSocket session end (on; env ROOST_SESSION_LOG)",
    )
    ops.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        help="answer Prometheus scrapes at /metrics (off; env ROOST_METRICS)",
    )


def flag_parser(prog: str) -> argparse.ArgumentParser:
    """A parser of the server flags alone, for ``app.start()`` (other arguments are the app's)."""
    parser = argparse.ArgumentParser(prog=prog, add_help=False, allow_abbrev=False)
    add_flags(parser)
    return parser


def resolve(defaults: Settings, flags: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """``defaults`` overridden by ``environ`` overridden by ``flags`` (None: not given).

    Raises SettingsError for a bad environment value or a bad combination.
    """
    values: dict[str, Any] = {}
    for field in fields(Settings):
        _, env_name, parse = _SOURCES[field.name]
        given = getattr(flags, field.name, None)
        if given is not None:
            values[field.name] = given
        elif env_name is not None and environ.get(env_name, "") != "":
            try:
                values[field.name] = parse(environ[env_name])
            except argparse.ArgumentTypeError as exc:
                raise SettingsError(f"{env_name}: {exc}") from None
    merged = replace(defaults, **values)
    check(merged)
    return merged


def check(settings: Settings) -> None:
    """Raise SettingsError if ``settings`` cannot be served (values given in code included)."""
    for name, (flag, _, parse) in _SOURCES.items():
        value = getattr(settings, name)
        try:
            if value is not None and parse is not bool and parse is not switch:
                parse(str(value))
        except argparse.ArgumentTypeError as exc:
            raise SettingsError(f"{flag}: {exc}") from None
    if settings.ssl_certfile is None:
        for name in ("ssl_keyfile", "ssl_ca_certs"):
            if getattr(settings, name) is not None:
                raise SettingsError(f"{_SOURCES[name][0]} needs --ssl-certfile")
    if settings.reload and settings.processes > 1:
        raise SettingsError(
            f"--reload runs the app in one process; it cannot be combined with "
            f"--processes {settings.processes}"
        )
