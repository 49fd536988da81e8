"""``--reload``: run the server in a child process and restart it when a source file changes.

The child gets a control pipe (see roost.runner): a change sends ``RESTART`` (open WebSockets
get close 1012) and a fresh child is started; SIGTERM or SIGINT sends ``STOP``, a second one
``EXIT_NOW``. If this process dies, the child sees the pipe close and shuts down too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from roost.process import (
    CONTROL_FD_ENV,
    EXIT_NOW,
    RESTART,
    STOP,
    forced_exit_status,
    ignore_stop_signals,
)

logger = logging.getLogger("roost")

#: Files whose change restarts the app.
RELOAD_SUFFIXES = (".py", ".html", ".js", ".css", ".json", ".toml")


class _Child:
    """One run of the server, with the write end of its control pipe."""

    def __init__(self, command: list[str]) -> None:
        read_end, self._control = os.pipe()
        try:
            self.proc = subprocess.Popen(
                command, pass_fds=(read_end,), env={**os.environ, CONTROL_FD_ENV: str(read_end)}
            )
        finally:
            os.close(read_end)

    def send(self, command: bytes) -> None:
        """Write a control command; a child that is gone is ignored."""
        with contextlib.suppress(OSError):
            os.write(self._control, command)

    def wait(self) -> int:
        """Wait for the child to exit; its exit status."""
        status = self.proc.wait()
        os.close(self._control)
        self._control = -1
        return status


class _StopFlag:
    """A stop event for watchfiles backed by a callable."""

    def __init__(self, check: Callable[[], bool]) -> None:
        self._check = check

    def is_set(self) -> bool:
        return self._check()


def reload_loop(command: list[str]) -> int:
    """Run ``command`` and run it again whenever a watched file changes; the exit status."""
    try:
        from watchfiles import watch
    except ImportError:
        raise SystemExit("roost: --reload needs watchfiles: pip install 'roost[reload]'") from None
    signals: list[int] = []
    child = _Child(command)

    def on_signal(signum: int, frame: object) -> None:
        signals.append(signum)
        child.send(STOP if len(signals) == 1 else EXIT_NOW)

    def relevant(change: object, path: str) -> bool:
        return path.endswith(RELOAD_SUFFIXES) and "/." not in path

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    exited = False
    try:
        for changes in watch(
            Path.cwd(),
            watch_filter=relevant,
            stop_event=_StopFlag(lambda: bool(signals)),
            rust_timeout=200,
            yield_on_timeout=True,
        ):
            if signals:
                break
            if not changes:
                if child.proc.poll() is not None and not exited:
                    exited = True
                    logger.error(
                        "the app exited (status %d); waiting for a file change to start it again",
                        child.proc.returncode,
                    )
                continue
            logger.warning("change detected; restarting")
            child.send(RESTART)
            child.wait()
            child = _Child(command)
            exited = False
        child.send(STOP)
        status = child.wait()
    finally:
        if child.proc.poll() is None:
            child.send(STOP)
            child.wait()
        ignore_stop_signals()
    if len(signals) > 1:
        return forced_exit_status(signals[-1])
    return 0 if status in (0, -signal.SIGTERM) else status
