"""The layering of python/tpat_bridge, read from the source with `ast` (nothing is imported).

Layers, top to bottom: `__main__` -> bridge/ -> tools/ -> planning/ -> lowerings/ -> the common
leaf modules (errors, dtypes, node). A module may import its own layer or any layer below, never
one above, and the import graph has no cycle. Every import counts, wherever it is written, and so do
the module names of the bridge's command table (strings "tpat_bridge.<module>"). An import inside a
function is allowed only for a reason written beside it (a comment saying "lazy" or "probe").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "python" / "tpat_bridge"

LAYERS = {"__main__": 5, "bridge": 4, "tools": 3, "planning": 2, "lowerings": 1}
LEAVES = {"errors", "dtypes", "node"}  # layer 0


def module_name(path: Path, pkg: Path = PKG) -> str:
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(pkg: Path = PKG) -> dict:
    """module name -> path, for every .py file of the package."""
    return {module_name(p, pkg): p for p in sorted(pkg.rglob("*.py")) if "__pycache__" not in p.parts}


def layer(mod: str) -> int:
    parts = mod.split(".")[1:]
    if not parts:
        return 0  # the package's (empty) __init__
    head = parts[0]
    if head in LAYERS:
        return LAYERS[head]
    if head in LEAVES:
        return 0
    raise AssertionError(f"tpat_bridge.{head} is in no layer: put it in a subpackage or list it in this test")


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, path: Path, known: dict) -> list[tuple[str, int, bool, ast.AST]]:
    """(imported tpat_bridge module, line, inside a function, node) for every import of `mod`."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    out.append((a.name, child.lineno, in_func, child))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(mod, is_pkg, child)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in known else base, child.lineno, in_func, child))
            elif (
                isinstance(child, ast.Constant)
                and isinstance(child.value, str)
                and child.value in known
                and child.value.startswith("tpat_bridge.")
            ):
                out.append((child.value, child.lineno, in_func, child))  # a command table entry
            visit(child, inner)

    visit(tree, False)
    return [(m, line, f, n) for m, line, f, n in out if m == "tpat_bridge" or m.startswith("tpat_bridge.")]


def graph(pkg: Path = PKG) -> dict:
    known = modules(pkg)
    g = {}
    for mod, path in known.items():
        g[mod] = {}
        for target, line, _, _ in imports(mod, path, known):
            if target != mod and target in known and known[target].name != "__init__.py":
                g[mod].setdefault(target, line)
    return g


def cycle(g: dict):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for n in g.get(m, {}):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state:
                found = dfs(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = dfs(m)
            if found:
                return found
    return None


def upward(g: dict) -> list[str]:
    return [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)}) at line {line}"
        for a, targets in g.items()
        for b, line in targets.items()
        if layer(b) > layer(a)
    ]


def test_every_module_has_a_layer():
    for mod in modules():
        layer(mod)


def test_no_import_cycle():
    found = cycle(graph())
    assert found is None, "import cycle: " + " -> ".join(found)


def test_no_upward_import():
    assert upward(graph()) == []


def test_imports_inside_functions_say_why():
    """An import written inside a function carries its reason ("lazy ..." / "... probe") in a
    comment on its line or the line above; imports of the package's own modules belong at the top
    unless they say why too."""
    bad = []
    for mod, path in modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    near = " ".join(lines[max(0, node.lineno - 3) : node.lineno]).lower()
                    if "lazy" not in near and "probe" not in near:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert bad == [], "imports inside functions without a reason:\n" + "\n".join(sorted(set(bad)))


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The same checks on a small package with a cycle through a relative import and a lowering that
    imports the planner: both are found."""
    pkg = tmp_path / "tpat_bridge"
    for d in ("", "planning", "lowerings"):
        (pkg / d).mkdir(exist_ok=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "planning" / "plan.py").write_text("from ..lowerings import registry\n")
    (pkg / "lowerings" / "registry.py").write_text("def f():\n    from ..planning import plan  # lazy\n")
    g = graph(pkg)
    assert cycle(g) == ["tpat_bridge.lowerings.registry", "tpat_bridge.planning.plan", "tpat_bridge.lowerings.registry"]
    assert upward(g) == [
        "tpat_bridge.lowerings.registry (layer 1) imports tpat_bridge.planning.plan (layer 2) at line 2"
    ]


@pytest.mark.parametrize("name", ["version", "plan", "bench"])
def test_the_command_table_counts_as_imports(name):
    g = graph()
    table = g["tpat_bridge.bridge.dispatch"]
    want = {
        "version": "tpat_bridge.bridge.versions",
        "plan": "tpat_bridge.planning.plan",
        "bench": "tpat_bridge.tools.bench.runner",
    }[name]
    assert want in table
