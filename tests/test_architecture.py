"""The package's shape: no import cycles (type-only imports count), layers point down, and
the core never imports a framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "crossrank"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every crossrank module and the crossrank modules it imports (anywhere in the file)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` may name a submodule.
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets.update(n for n in names if n in files and n != name)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exports its modules; those edges are not design cycles."""
    packages = {name for name in graph if (PACKAGE.parent / name.replace(".", "/")).is_dir()}
    return {
        name: {t for t in targets if not (name in packages and t.startswith(name + "."))}
        for name, targets in graph.items()
    }


def test_no_import_cycles() -> None:
    assert _cycles(_without_package_inits(_imports())) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("crossrank.engine", ("crossrank.retrieval", "crossrank.evaluation", "crossrank.training")),
        ("crossrank.ranking", ("crossrank.engine", "crossrank.retrieval", "crossrank.training")),
        ("crossrank.retrieval", ("crossrank.engine", "crossrank.evaluation", "crossrank.training")),
        ("crossrank.types", ("crossrank.engine", "crossrank.ranking")),
    ],
)
def test_layers_point_down(layer: str, forbidden: tuple[str, ...]) -> None:
    graph = _imports()
    bad = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    )
    assert bad == []


def test_core_never_imports_a_framework() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.startswith(("llama_index", "langchain"))
            ]
    assert offenders == []
