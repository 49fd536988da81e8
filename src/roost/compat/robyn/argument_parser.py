"""Robyn's command-line flags (``python app.py --processes 2 --dev``), as roost's."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["Config"]

#: Robyn's log level names that roost spells differently.
_LOG_LEVELS = {"WARN": "WARNING"}


@dataclass
class Config:
    """Robyn's flags: ``--processes``, ``--workers``, ``--dev``, ``--log-level``,
    ``--disable-openapi``, ``--fast``, ``--open-browser``."""

    processes: int | None = None
    workers: int | None = None
    dev: bool = False
    log_level: str | None = None
    disable_openapi: bool = False
    fast: bool = False
    open_browser: bool = False

    @classmethod
    def from_argv(cls, argv: list[str]) -> Config:
        """The Robyn flags in ``argv`` (other arguments are left alone)."""
        flags, _ = _parser().parse_known_args(argv)
        return cls(**vars(flags))

    def roost_argv(self, argv: list[str]) -> list[str]:
        """``argv`` with Robyn's flags replaced by roost's: ``--dev`` becomes ``--reload``,
        ``--log-level WARN`` becomes ``WARNING``; ``--workers``, ``--fast``,
        ``--open-browser`` and ``--disable-openapi`` are dropped."""
        _, rest = _parser().parse_known_args(argv)
        out = list(rest)
        if self.processes is not None:
            out += ["--processes", str(self.processes)]
        if self.log_level is not None:
            level = self.log_level.upper()
            out += ["--log-level", _LOG_LEVELS.get(level, level)]
        if self.dev:
            out.append("--reload")
        return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--dev", action="store_true", default=False)
    parser.add_argument("--log-level", dest="log_level", default=None)
    parser.add_argument("--disable-openapi", dest="disable_openapi", action="store_true")
    parser.add_argument("--fast", action="store_true", default=False)
    parser.add_argument("--open-browser", dest="open_browser", action="store_true")
    return parser
