"""Robyn's command-line flags, as roost reads them for a Robyn app."""

from __future__ import annotations

from roost.compat.robyn import Config


def test_robyn_flags_become_roost_flags() -> None:
    argv = ["--processes", "2", "--workers", "4", "--log-level", "warn", "--dev", "--app-own"]
    config = Config.from_argv(argv)
    assert (config.processes, config.workers, config.dev) == (2, 4, True)
    assert config.roost_argv(argv) == [
        "--app-own",
        "--processes",
        "2",
        "--log-level",
        "WARNING",
        "--reload",
    ]


def test_flags_roost_ignores_are_dropped() -> None:
    argv = ["--fast", "--open-browser", "--disable-openapi", "--port", "9000"]
    config = Config.from_argv(argv)
    assert config.disable_openapi and config.fast and config.open_browser
    assert config.roost_argv(argv) == ["--port", "9000"]
    assert Config.from_argv([]).roost_argv([]) == []
