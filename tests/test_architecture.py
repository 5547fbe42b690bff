"""The import graph of ``src/critdiff`` (docs/architecture.md): no circle, and every import goes down the layers.

The graph is read with :mod:`ast`, so it holds every import statement, also those inside functions (a lazy
import is still a dependency; hiding a back-edge in a function does not make it go away). Module paths
resolved on demand from strings (:data:`critdiff.experiments.kinds.KINDS`) are not imports.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "critdiff"

# lowest first; a module may import its own layer or a lower one (docs/architecture.md)
LAYERS = (
    ("foundations", {"__init__", "errors", "fmt", "io", "threads", "seeding", "devices", "outdir", "spec", "stencil", "multistep",
                     "config", "schedules", "times", "denoisers", "samplers", "guidance", "guidance_schedules",
                     "guidance_ramp", "figures", "progress", "inputs", "limits", "late_start"}),
    ("models", {"data", "scores", "nets", "integrations", "pretrained"}),
    ("theory and probes", {"theory", "probes"}),
    ("experiments", {"experiments"}),
    ("report", {"report"}),
    ("cli", {"cli", "__main__"}),
)
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = p.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


def _targets(module: str, is_package: bool, node) -> list[str]:
    """The critdiff modules an import statement names (``from pkg import sub``: the submodule when it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "critdiff"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    elif (node.module or "").split(".")[0] == "critdiff":
        target = node.module
    else:
        return []
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """``{module: {critdiff modules it imports anywhere in its body}}``."""
    graph = {}
    for module, path in MODULES.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(module, path.name == "__init__.py", node):
                    while t not in MODULES and "." in t:  # an attribute of a module: the module
                        t = t.rsplit(".", 1)[0]
                    if t != module:
                        deps.add(t)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for rank, (_, names) in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module}: no layer; add its top-level name to LAYERS and docs/architecture.md")


def test_the_graph_reader_sees_imports_inside_functions():
    graph = import_graph()
    assert "critdiff.experiments.guide.tc" in graph["critdiff.experiments.guide.estimators"]  # module level
    assert "critdiff.theory.critical" in graph["critdiff.experiments.guide.estimators"]  # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_go_down_the_layers():
    bad = [f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
           for a, deps in sorted(import_graph().items()) for b in sorted(deps) if layer(b) > layer(a)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_every_kind_has_a_result_class_and_a_renderer():
    from critdiff.experiments.kinds import KINDS, resolve, result_type

    for kind, entry in KINDS.items():
        assert result_type(kind).kind == kind
        assert callable(resolve("critdiff.report", entry.renderer))


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_function_over_80_lines(path):
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines, line {n.lineno})"
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
