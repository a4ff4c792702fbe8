"""The layering contract: every import goes down the stack, and no modules import each other round.

native binding -> low-level SDK -> engine -> chat -> SDK -> management/security -> settings
-> server -> CLI. A module may import its own package and anything in a lower layer,
never a higher one; lazy imports inside functions count too (they hide a cycle, they
do not remove it). This reads the source (AST), so it needs nothing loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kronk

ROOT = Path(kronk.__file__).resolve().parent

LAYERS: dict[str, int] = {
    "kronk": 0, "kronk.errors": 0, "kronk.paths": 0, "kronk.durations": 0, "kronk.lazy": 0,
    "kronk.http_errors": 1, "kronk.wire": 1,
    "kronk._native": 1, "kronk.llama": 2, "kronk.engine": 3, "kronk.chat": 4, "kronk.models": 4, "kronk.sdk": 5,
    "kronk.manage": 6, "kronk.security": 6, "kronk.tools": 6, "kronk.settings": 7, "kronk.server": 8, "kronk.cli": 9,
    "kronk.__main__": 10,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        module = _module_name(path)
        targets = graph.setdefault(module, set())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith("kronk"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                if base.startswith("kronk"):
                    # `from kronk.x import y` may name a submodule y: count it when it is one.
                    for alias in node.names:
                        sub = f"{base}.{alias.name}"
                        targets.add(sub if (ROOT.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                                    or (ROOT.parent / Path(*sub.split(".")) / "__init__.py").exists() else base)
    return graph


GRAPH = _imports()


def test_every_package_has_a_layer() -> None:
    assert {_layer_of(m) for m in GRAPH} <= set(LAYERS), "a new top-level module needs a layer in LAYERS"


def test_imports_only_go_down() -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if _layer_of(source) != _layer_of(target) and LAYERS[_layer_of(target)] > LAYERS[_layer_of(source)]
        and _layer_of(target) != "kronk"
    )
    assert upward == []


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if target not in GRAPH or target == module:
                continue
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [module, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    # A package's __init__ re-exporting its submodules is not a cycle of design.
    real = [c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))]
    assert real == []
