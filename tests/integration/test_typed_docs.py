"""docs/typed-messages.md is true: its Python blocks are parts of examples/typed/app.py (the
TestClient block is run against it), and every exchange it shows (``>`` sent, ``<``
received) is replayed, byte for byte, against that app over a real socket."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from itertools import count
from typing import Any

import websockets

from tests.integration.guide_runner import ROOT
from tests.timing import seconds

DOC = (ROOT / "docs" / "typed-messages.md").read_text()
EXAMPLE = ROOT / "examples" / "typed" / "app.py"


_loads = count()


def load_example() -> dict[str, Any]:
    """A fresh copy of the example module (its own app), imported as a real module."""
    name = f"typed_example_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return vars(module)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


def test_the_python_blocks_are_the_example_or_run_against_it() -> None:
    source = EXAMPLE.read_text()
    *parts, testing = blocks("python")
    assert parts
    for part in parts:
        assert part in source, part
    namespace = load_example()
    exec(compile(testing, "docs/typed-messages.md", "exec"), namespace)


async def test_every_exchange_in_the_doc_is_what_the_server_does(serve: Any) -> None:
    exchanges = [b for b in blocks("text") if b.startswith(("> ", "< "))]
    assert len(exchanges) >= 2
    app = load_example()["app"]
    async with serve(app) as server:
        for exchange in exchanges:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/chat") as ws:
                hello = await asyncio.wait_for(ws.recv(), seconds(5))
                conn_id = re.search(r'"id":"([^"]+)"', str(hello))
                assert conn_id is not None
                for line in exchange.splitlines():
                    direction, text = line[:2], line[2:]
                    if direction == "> ":
                        await ws.send(text)
                    else:
                        assert direction == "< ", line
                        expected = text.replace("<id>", conn_id.group(1))
                        assert await asyncio.wait_for(ws.recv(), seconds(5)) == expected
