"""Fixtures for the attack tests: the target app in its own process, on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import server


@pytest.fixture
def target() -> Iterator[object]:
    with server() as proc:
        yield proc


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")
