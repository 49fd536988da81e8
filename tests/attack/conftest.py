"""Fixtures for the attack tests: the target app in its own process, on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .harness import server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Attacks that measure a server's RSS over seconds of traffic belong to ``make soak``
    (ROOST_SOAK=1); ``make test`` covers the same fixes with deterministic tests."""
    if os.environ.get("ROOST_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="an RSS soak: run by make soak (ROOST_SOAK=1)")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)


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
