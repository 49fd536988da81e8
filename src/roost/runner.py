"""Running an app: ``roost module:app``, ``python -m roost`` and ``app.start()`` end here.
Settings decide between one process (roost.process), a file watcher that restarts it
(roost.reload) and a supervisor of worker processes (roost.workers).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import replace

from roost.hub.credentials import redacted
from roost.hub.urls import make_broker
from roost.logs import configure_logging
from roost.metrics import DEFAULT_METRICS_PATH, metrics_available
from roost.process import (
    ListenError,
    Servable,
    control_fd_from_env,
    ignore_stop_signals,
    new_event_loop,
    serve,
)
from roost.reload import reload_loop
from roost.server.tls import TLSConfigError, server_context
from roost.settings import Settings, SettingsError, flag_parser, resolve
from roost.workers import supervise

__all__ = ["run", "start"]


def run(load: Callable[[], Servable], settings: Settings, command: list[str]) -> int:
    """Serve the app ``load()`` returns as ``settings`` say until stopped; the exit status.

    ``command`` runs this same app again from a fresh interpreter: with ``--reload`` this
    process only watches files and runs ``command`` (without ``--reload``) in a child, and
    does not load the app itself.
    """
    configure_logging(
        settings.log_level,
        log_format=settings.log_format,
        access_log=settings.access_log,
        session_log=settings.session_log,
    )
    if settings.reload:
        return reload_loop([arg for arg in command if arg != "--reload"])
    ssl = None
    if settings.ssl_certfile is not None:
        try:
            ssl = server_context(
                settings.ssl_certfile, settings.ssl_keyfile, ca_certs=settings.ssl_ca_certs
            )
        except TLSConfigError as exc:
            raise SystemExit(f"roost: --ssl-certfile: {exc}") from None
    app = load()
    if settings.metrics and app.server_options.metrics_path is None:
        app.server_options = replace(app.server_options, metrics_path=DEFAULT_METRICS_PATH)
    if app.server_options.metrics_path is not None and not metrics_available():
        raise SystemExit("roost: --metrics needs prometheus-client: pip install 'roost[metrics]'")
    if settings.broker:
        try:
            app.hub.broker = make_broker(settings.broker)
        except ValueError as exc:
            raise SystemExit(f"roost: --broker {redacted(settings.broker)}: {exc}") from None
    if settings.processes > 1:
        return supervise(
            app,
            settings.host,
            settings.port,
            settings.processes,
            ssl=ssl,
            drain_delay=settings.drain_delay,
        )
    control = control_fd_from_env()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(
                serve(
                    app,
                    settings.host,
                    settings.port,
                    control=control,
                    ssl=ssl,
                    drain_delay=settings.drain_delay,
                )
            )
    except ListenError as exc:
        raise SystemExit(f"roost: {exc}") from None
    finally:
        ignore_stop_signals()
    return 0


def start(app: Servable, defaults: Settings) -> None:
    """``app.start()``: ``defaults`` from code, overridden by ROOST_* and by the server flags in
    ``sys.argv`` (arguments that are not server flags are left to the app)."""
    parser = flag_parser(os.path.basename(sys.argv[0]) or "app")
    flags, _ = parser.parse_known_args(sys.argv[1:])
    try:
        settings = resolve(defaults, flags, os.environ)
    except SettingsError as exc:
        parser.error(str(exc))
    status = run(lambda: app, settings, [sys.executable, *sys.orig_argv[1:]])
    if status:
        raise SystemExit(status)
