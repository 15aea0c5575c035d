"""The shape of the code: imports flow one way through the pipeline's layers, no import cycle,
no module much over 400 lines. Read from the source (ast), so lazy imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "semsearch"
# lowest first: a module may import from its own layer and the layers below it, never above
LAYERS = [
    {"errors", "config", "results", "globs", "query"},
    {"documents", "embedding"},
    {"storage"},
    {"retrieval"},
    {"index"},
    {"evaluation", "serving", "integrations"},
    {"cli"},
    {"", "__main__"},  # the package's own __init__ (the public API) and ``python -m semsearch``
]
MAX_LINES = 430  # "about 400": a module longer than this has more than one job


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The semsearch modules ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(n for n, members in enumerate(LAYERS) if part in members)


def test_every_module_has_a_layer() -> None:
    for module in modules():
        assert layer(module) >= 0, module


def test_imports_flow_one_way() -> None:
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # the tests above would pass on an empty graph: make sure they read real imports
    edges = graph()
    assert "semsearch.index.handle" in edges["semsearch.index.facade"]
    assert "semsearch.query" in edges["semsearch.storage.store"]
    assert layer("semsearch.cli.app") > layer("semsearch.index.facade") > layer("semsearch.storage.store")


def test_no_module_is_much_over_400_lines() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_submodule_shadows_a_name_its_package_exports() -> None:
    # importing a submodule sets it as an attribute of its package: `semsearch.index.migrate`
    # the module replaced `migrate` the function once a migration had run, and
    # `semsearch.migrate(...)` then failed with "'module' object is not callable"
    import importlib
    import types

    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)
    import semsearch

    shadowed = []
    for name, path in modules().items():
        if path.name == "__init__.py":
            package = importlib.import_module(name)
            exported = getattr(package, "__all__", ())
            shadowed += [f"{name}.{n}" for n in exported if isinstance(getattr(package, n), types.ModuleType)]
    assert shadowed == [] and callable(semsearch.migrate)
