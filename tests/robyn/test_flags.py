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


def test_start_timeouts_set_the_server_options(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Robyn's ``start(client_timeout=, keep_alive_timeout=)`` set roost's timers."""
    from roost.app import Roost
    from roost.compat.robyn import Robyn

    seen = []
    monkeypatch.setattr(Roost, "start", lambda self, *a, **k: seen.append(self.server_options))
    monkeypatch.setattr("sys.argv", ["app.py"])
    app = Robyn(__file__)
    app.start(client_timeout=3, keep_alive_timeout=7)
    assert (seen[0].handshake_timeout, seen[0].keep_alive_timeout) == (3.0, 7.0)
    other = Robyn(__file__)
    other.start()
    assert (seen[1].handshake_timeout, seen[1].keep_alive_timeout) == (10.0, 5.0)
