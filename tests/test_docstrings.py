"""Every public definition of the library says what it is: a one-line summary at least.

Public means: a name in a module's ``__all__``, and the public methods and properties of
the classes among them (dunder methods and dataclass plumbing excepted).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import crossrank

# Modules that need an optional extra which the dev install may lack are skipped, not failed.
_OPTIONAL = ("crossrank.serving",)


def _modules() -> list[object]:
    found = []
    for info in pkgutil.walk_packages(crossrank.__path__, "crossrank."):
        if info.name.endswith("__main__"):
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:
            if not info.name.startswith(_OPTIONAL):
                raise
    return found


def _undocumented() -> list[str]:
    missing: set[str] = set()
    for module in _modules():
        name = module.__name__  # type: ignore[attr-defined]
        for public in getattr(module, "__all__", ()):
            obj = getattr(module, public, None)
            if obj is None or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", name) != name:
                continue  # re-exported: checked where it is defined
            if not (obj.__doc__ or "").strip():
                missing.add(f"{name}.{public}")
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    target = value.fget if isinstance(value, property) else value
                    if isinstance(target, classmethod | staticmethod):
                        target = target.__func__
                    if not inspect.isfunction(target):
                        continue
                    if not (target.__doc__ or "").strip():
                        missing.add(f"{name}.{public}.{attr}")
    return sorted(missing)


def test_every_public_definition_has_a_docstring() -> None:
    assert _undocumented() == []
