"""``roost module:app`` (or ``python -m roost module:app``): serve an app from the shell.

Flags: ``--host``, ``--port``, ``--log-level``, and ``--reload`` to restart the app when a
file under the current directory changes (open WebSockets get close 1012 on each restart).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("roost")

RELOAD_SUFFIXES = (".py", ".html", ".js", ".css", ".json", ".toml")


def parser() -> argparse.ArgumentParser:
    """The command line's flags."""
    p = argparse.ArgumentParser(prog="roost", description="Serve a roost app.")
    p.add_argument("target", help="the app, as module:attribute (e.g. examples.chat.app:app)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to bind (8080)")
    p.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    p.add_argument("--reload", action="store_true", help="restart when source files change")
    return p


def load(target: str) -> object:
    """Import ``module:attribute`` from the current directory."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"roost: expected module:attribute, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"roost: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"roost: {module_name!r} has no attribute {attribute!r}") from None


def serve(args: argparse.Namespace) -> None:
    """Import the app and serve it in this process."""
    from roost.app import Roost

    app = load(args.target)
    if not isinstance(app, Roost):
        raise SystemExit(f"roost: {args.target!r} is not a Roost app")
    from roost.runner import run

    run(app, host=args.host, port=args.port, log_level=args.log_level)


def reload_loop(argv: list[str]) -> int:
    """Run the app in a child process and restart it whenever a watched file changes."""
    from watchfiles import watch

    child_argv = [sys.executable, "-m", "roost", *[a for a in argv if a != "--reload"]]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    child = subprocess.Popen(child_argv)

    def relevant(change: object, path: str) -> bool:
        return path.endswith(RELOAD_SUFFIXES) and "/." not in path

    try:
        for changes in watch(
            Path.cwd(),
            watch_filter=relevant,
            stop_event=_StopFlag(lambda: stopping),
            rust_timeout=200,
            yield_on_timeout=True,
        ):
            if stopping:
                break
            if not changes:
                if child.poll() is not None and not stopping:
                    child = subprocess.Popen(child_argv)  # it crashed: start it again
                continue
            logging.getLogger("roost").warning("change detected; restarting")
            child.send_signal(signal.SIGHUP)  # close 1012, then exit
            child.wait()
            child = subprocess.Popen(child_argv)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait()
    return 0


class _StopFlag:
    """A stop event for watchfiles backed by a callable."""

    def __init__(self, check: object) -> None:
        self._check = check

    def is_set(self) -> bool:
        return bool(self._check())  # type: ignore[operator]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``roost`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.reload:
        return reload_loop(argv)
    sys.argv = [sys.argv[0], *argv]
    serve(args)
    return 0
