"""The cluster tests run only under ``make cluster-test`` (ROOST_CLUSTER=1), as root with
iproute2. Each test gets a fresh ``Cluster`` that is torn down whatever happens, and a
``report`` whose notes, with each test's outcome and duration, go to the Markdown file named
by ROOST_CLUSTER_REPORT at the end of the session."""

from __future__ import annotations

import inspect
import os
import platform
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import PRESENCE_TTL, REDIS, Cluster
from tests.cluster.netns import available

RESULTS: dict[str, dict[str, object]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.environ.get("ROOST_CLUSTER") != "1":
        reason = "a cluster test: run by make cluster-test (ROOST_CLUSTER=1)"
    elif REDIS is None:
        reason = "redis-server is not installed"
    else:
        reason = available()
    if reason is None:
        return
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.skip(reason=reason))


class Report:
    """What one scenario checked, in order, for docs/cluster-test.md."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    r = Report()
    yield r
    RESULTS.setdefault(request.node.name, {})["notes"] = r.notes


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        await c.start()
        yield c
    finally:
        await c.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    rep = yield
    if "tests/cluster/" in str(item.fspath).replace(os.sep, "/") and (
        rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed")
    ):
        entry = RESULTS.setdefault(item.name, {})
        entry["outcome"] = rep.outcome
        entry["seconds"] = round(rep.duration, 1)
        entry["doc"] = inspect.cleandoc(getattr(item, "function", None).__doc__ or "")  # type: ignore[union-attr]
        if rep.failed:
            entry["failure"] = str(rep.longrepr).splitlines()[-1][:300]
    return rep


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("ROOST_CLUSTER_REPORT")
    if not target or not RESULTS:
        return
    total = sum(float(str(r.get("seconds", 0))) for r in RESULTS.values())
    lines = [
        "# Cluster test: last run",
        "",
        "Written by `make cluster-test` (tests/cluster): Redis and three roost nodes, each in its",
        "own Linux network namespace joined by veth links, clients in a namespace of their own.",
        f"Presence TTL {PRESENCE_TTL} s. Run on {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, Linux {platform.release()}; "
        f"{total:.0f} s of scenarios.",
        "",
        "| scenario | result | seconds |",
        "| --- | --- | --- |",
    ]
    for name, r in RESULTS.items():
        lines.append(f"| `{name}` | {r.get('outcome', '?')} | {r.get('seconds', '?')} |")
    for name, r in RESULTS.items():
        lines += ["", f"## `{name}`: {r.get('outcome', '?')}", ""]
        if r.get("doc"):
            lines += [str(r["doc"]), ""]
        lines += [f"- {n}" for n in r.get("notes", [])]  # type: ignore[attr-defined]
        if r.get("failure"):
            lines += ["", f"Failure: `{r['failure']}`"]
    Path(target).write_text("\n".join(lines) + "\n")
