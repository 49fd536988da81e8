"""roost.settings: one set of server flags; code defaults < environment < flags."""

from __future__ import annotations

import pytest

from roost.settings import Settings, SettingsError, flag_parser, resolve


def settings(argv: list[str], env: dict[str, str], **code: object) -> Settings:
    flags, _ = flag_parser("app.py").parse_known_args(argv)
    return resolve(Settings(**code), flags, env)  # type: ignore[arg-type]


def test_flags_override_the_environment_which_overrides_the_code() -> None:
    env = {"ROOST_PORT": "9000", "ROOST_HOST": "127.0.0.2", "ROOST_PROCESSES": "3"}
    assert settings([], {}, port=7000) == Settings(port=7000)
    assert settings([], env, port=7000) == Settings(host="127.0.0.2", port=9000, processes=3)
    assert settings(["--port", "0", "--processes", "1"], env) == Settings(
        host="127.0.0.2", port=0, processes=1
    )


def test_app_arguments_are_left_alone() -> None:
    flags, rest = flag_parser("app.py").parse_known_args(["--port", "1", "--verbose", "x"])
    assert (flags.port, rest) == (1, ["--verbose", "x"])
    # No abbreviations: --proc is the app's, not --processes.
    flags, rest = flag_parser("app.py").parse_known_args(["--proc", "2"])
    assert (flags.processes, rest) == (None, ["--proc", "2"])


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ({"processes": 0}, "--processes: invalid process count 0"),
        ({"port": 65536}, "--port: invalid port 65536"),
        ({"log_level": "verbose"}, "--log-level: invalid log level 'verbose'"),
        ({"reload": True, "processes": 2}, "cannot be combined with --processes 2"),
    ],
)
def test_bad_values_from_code_are_errors_too(code: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings([], {}, **code)


def test_an_empty_environment_variable_is_not_set() -> None:
    assert settings([], {"ROOST_PORT": ""}) == Settings()


def test_ops_settings_from_the_environment_and_the_flags() -> None:
    env = {
        "ROOST_DRAIN_DELAY": "5",
        "ROOST_LOG_FORMAT": "JSON",
        "ROOST_ACCESS_LOG": "yes",
        "ROOST_SESSION_LOG": "off",
        "ROOST_SSL_CERTFILE": __file__,
    }
    assert settings([], env) == Settings(
        drain_delay=5.0,
        log_format="json",
        access_log=True,
        session_log=False,
        ssl_certfile=__file__,
    )
    flags = ["--drain-delay", "0.5", "--no-access-log", "--session-log", "--log-format", "text"]
    assert settings(flags, env) == Settings(drain_delay=0.5, ssl_certfile=__file__)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {"ROOST_DRAIN_DELAY": "-1"}, "ROOST_DRAIN_DELAY: invalid duration '-1'"),
        ([], {"ROOST_DRAIN_DELAY": "soon"}, "ROOST_DRAIN_DELAY: invalid duration 'soon'"),
        ([], {"ROOST_ACCESS_LOG": "maybe"}, "ROOST_ACCESS_LOG: invalid switch 'maybe'"),
        ([], {"ROOST_LOG_FORMAT": "xml"}, "ROOST_LOG_FORMAT: invalid log format 'xml'"),
        ([], {"ROOST_SSL_KEYFILE": "/no/such.key"}, "ROOST_SSL_KEYFILE: cannot read"),
        ([], {"ROOST_SSL_CA_CERTS": __file__}, "--ssl-ca-certs needs --ssl-certfile"),
    ],
)
def test_bad_ops_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(argv, env)


def test_a_broker_password_is_not_shown_in_errors() -> None:
    with pytest.raises(SettingsError) as caught:
        settings([], {"ROOST_BROKER": "http://:hunter2@cache:6379"})
    assert "hunter2" not in str(caught.value)
    assert "http://:***@cache:6379" in str(caught.value)
