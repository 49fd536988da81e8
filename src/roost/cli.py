"""``roost module:app`` (or ``python -m roost module:app``): serve an app from the shell.

The flags are the server flags of ``roost.settings`` (``--host``, ``--port``, ``--processes``,
``--broker``, ``--log-level``, ``--reload``), the same ones ``app.start()`` reads. An unknown
flag or a bad value is an error with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from roost.app import Roost
from roost.runner import run
from roost.settings import Settings, SettingsError, add_flags, resolve


def parser() -> argparse.ArgumentParser:
    """The command line: the app, then the server flags."""
    p = argparse.ArgumentParser(prog="roost", description="Serve a roost app.", allow_abbrev=False)
    p.add_argument("target", help="the app, as module:attribute (e.g. examples.chat.app:app)")
    add_flags(p)
    return p


def load(target: str) -> Roost:
    """Import ``module:attribute`` from the current directory; it must be a Roost app."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"roost: expected module:attribute, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"roost: cannot import {module_name!r}: {exc}") from None
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"roost: {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(app, Roost):
        raise SystemExit(f"roost: {target!r} is not a Roost app")
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``roost`` command; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    try:
        settings = resolve(Settings(), args, os.environ)
    except SettingsError as exc:
        p.error(str(exc))
    target = args.target
    return run(lambda: load(target), settings, [sys.executable, "-m", "roost", *argv])
