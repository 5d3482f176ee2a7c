"""The house (issue 20): layers you can see in folder names, imports that run one way.

    cli, demo, sklearn  →  training  →  model  →  io, datasets  →  kernels, losses, _fs  →  errors

Every import in the package is read from its source (module level and inside functions
alike: a lazy import is still a dependency), and the test fails on any cycle, on any
import that climbs a layer, and on modules or classes grown too large to read."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamhog"

#: Layer of each part of the package: a module may import its own layer or lower ones.
LAYERS = {
    "streamhog._version": 0, "streamhog.errors": 0,
    "streamhog._fs": 1, "streamhog.kernels": 1, "streamhog.losses": 1,
    "streamhog.io": 2, "streamhog.datasets": 2,
    "streamhog.model": 3,
    "streamhog.training": 4,
    "streamhog.factorization": 5, "streamhog.cluster": 5, "streamhog.sklearn": 5, "streamhog._sklearn": 5,
    "streamhog.cli": 6, "streamhog.demo": 6, "streamhog.__main__": 6, "streamhog": 7,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (resolved to modules that exist)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            # "from . import spec" names a module; "from .x import f" an attribute of module x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
        assert module, "every module belongs to a layer"
    return LAYERS[module]


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_imports_run_down_the_layers():
    upward = [f"{m} ({_layer(m)}) imports {t} ({_layer(t)})" for m, ts in sorted(_graph().items())
              for t in sorted(ts) if _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_modules_and_classes_stay_small():
    big = []
    for name, path in sorted(_modules().items()):
        lines = path.read_text().count("\n")
        if lines > 450:
            big.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                big.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not big, "\n".join(big)


def test_the_top_level_holds_few_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
