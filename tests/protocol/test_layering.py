"""roost.protocol is sans-I/O: it never imports asyncio, socket or time."""

import ast
from pathlib import Path

import roost.protocol

FORBIDDEN = {"asyncio", "socket", "time", "selectors", "uvloop", "threading"}


def test_protocol_imports_no_io_modules() -> None:
    package = Path(roost.protocol.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(package.glob("*.py"))) >= 6
