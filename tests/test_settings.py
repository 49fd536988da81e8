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
