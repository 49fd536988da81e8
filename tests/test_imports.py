"""roost's import graph: every module imports only its own layer or the layers below, and no
modules import each other in a cycle, imports deferred into functions included.

Type-only imports (under ``if TYPE_CHECKING:``) may point back up only where listed below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import roost

ROOT = Path(roost.__file__).parent

#: Layers from the bottom up; a module may import its own layer and the layers before it.
LAYERS: list[tuple[str, set[str]]] = [
    ("protocol", {"roost.protocol.*"}),
    ("server", {"roost.server.*"}),
    ("hub", {"roost.hub.*"}),
    (
        "HTTP and app building blocks",
        {
            "roost.calls",
            "roost.origins",
            "roost.routing",
            "roost.params",
            "roost.requests",
            "roost.responses",
            "roost.middleware",
            "roost.sse",
            "roost.staticfiles",
            "roost.types",
            "roost.forms",
            "roost.auth",
            "roost.templating",
            "roost.openapi",
            "roost.metrics",
            "roost.client_script",
        },
    ),
    (
        "running processes",
        {
            "roost.logs",
            "roost.process",
            "roost.runner",
            "roost.workers",
            "roost.settings",
            "roost.reload",
        },
    ),
    (
        "registered routes and the connection object",
        {"roost.routes", "roost.websocket", "roost.typed", "roost.asyncapi"},
    ),
    ("a WebSocket's admission and life", {"roost.admission", "roost.session"}),
    ("dispatch", {"roost.dispatch"}),
    ("registration API", {"roost.app"}),
    ("entry points", {"roost", "roost.cli", "roost.__main__", "roost.testing"}),
    ("Robyn's import paths, for apps that opt in", {"roost.compat.*"}),
]

#: Type-only imports allowed to point to a higher layer: (importer, imported).
TYPE_ONLY_UPWARD: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = ["roost", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if (
                member == module
                or (member.endswith(".*") and module.startswith(member[:-1]))
                or (member.endswith(".*") and module == member[:-2])
            ):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_imports.py")


def resolve(importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The roost modules an import statement names."""
    found: list[str] = []
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".")
            if MODULES[importer].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.append(candidate if candidate in MODULES else base)
    return [m for m in found if m in MODULES]


def imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(runtime imports, type-only imports) of every roost module."""
    runtime: dict[str, set[str]] = {m: set() for m in MODULES}
    typing_only: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        guarded: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.body:
                    guarded.update(id(n) for n in ast.walk(child))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                target = typing_only if id(node) in guarded else runtime
                target[module].update(m for m in resolve(module, node) if m != module)
    return runtime, typing_only


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_deferred_imports_included() -> None:
    runtime, _ = imports()
    assert find_cycle(runtime) is None, " -> ".join(find_cycle(runtime) or [])


def test_every_module_imports_only_its_layer_and_below() -> None:
    runtime, typing_only = imports()
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in runtime.items()
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    upward += [
        f"{a} imports {b} for typing only"
        for a, targets in typing_only.items()
        for b in sorted(targets)
        if layer_of(b) > layer_of(a) and (a, b) not in TYPE_ONLY_UPWARD
    ]
    assert upward == []


def test_the_graph_test_sees_deferred_and_type_only_imports(tmp_path: Path) -> None:
    """The checks above would catch what they claim to (a guard against a blind test)."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from roost.app import Roost\n"
        "def f():\n    from roost.dispatch import Dispatcher\n"
    )
    tree = ast.parse(source)
    deferred = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert {n.module for n in deferred} == {"typing", "roost.app", "roost.dispatch"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
