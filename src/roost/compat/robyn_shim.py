"""Let ``import robyn`` reach ``roost.compat.robyn``, so that a Robyn app runs on roost without
a change: ``install()`` in code, or ``python -m roost.compat.robyn_shim app.py [args]``.

It never shadows Robyn itself: ``install()`` raises RobynInstalled when a real ``robyn``
package can be imported (or already is), and the runner exits with that message.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
from types import ModuleType

__all__ = ["RobynInstalled", "install", "installed", "main", "uninstall"]

ALIAS = "robyn"
TARGET = "roost.compat.robyn"


class RobynInstalled(RuntimeError):
    """A real Robyn is importable: the shim refuses to hide it."""


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``robyn`` and ``robyn.<name>`` as the modules ``roost.compat.robyn[.<name>]``
    (the same module objects, so classes compare equal under either name)."""

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        real = TARGET + fullname[len(ALIAS) :]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(TARGET + spec.name[len(ALIAS) :])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the alias's spec on the module: give it its own back.
        original = self._specs.pop(module.__spec__.name if module.__spec__ else "", None)
        if original is not None:
            module.__spec__ = original

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}


_finder: _Alias | None = None


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _finder is not None


def _real_robyn() -> str | None:
    """Where a real ``robyn`` comes from, or None when there is none."""
    loaded = sys.modules.get(ALIAS)
    if loaded is not None:
        if getattr(loaded, "__name__", "") == TARGET:
            return None
        return getattr(loaded, "__file__", None) or "an already imported module"
    spec = importlib.util.find_spec(ALIAS)
    if spec is None:
        return None
    return spec.origin or "a package on sys.path"


def install() -> None:
    """Make ``import robyn`` (and ``robyn.responses``, ``robyn.authentication``, ...) import
    roost's Robyn API. Raises RobynInstalled if a real Robyn is importable. Idempotent."""
    global _finder
    if _finder is not None:
        return
    real = _real_robyn()
    if real is not None:
        raise RobynInstalled(
            f"a real Robyn is installed ({real}): roost will not hide it. Uninstall it to run "
            "this app on roost through 'import robyn', or import roost.compat.robyn instead"
        )
    _finder = _Alias()
    sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undo ``install()``: ``robyn`` modules already imported stay imported."""
    global _finder
    if _finder is not None:
        sys.meta_path.remove(_finder)
        _finder = None
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith(TARGET):
            del sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    """``python -m roost.compat.robyn_shim app.py [args]``: run a Robyn app on roost."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m roost.compat.robyn_shim app.py [app arguments]")
        return 0 if args else 2
    try:
        install()
    except RobynInstalled as exc:
        print(f"roost: {exc}", file=sys.stderr)
        return 1
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
