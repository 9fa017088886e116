"""Imports point one way: the module graph of tracegrad/ and compiler/ has no cycle, and no module
imports a project module inside a function, except the lazy imports listed here with their reason."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (importing module, imported module): imports deferred on purpose, never to dodge a cycle
LAZY = {
    ("tracegrad.tiers", "compiler"): "a process that never compiles never imports the compiler",
    ("tracegrad.tiers", "compiler.workers"): "the same",
    ("tracegrad.tiers", "compiler.build"): "Numba's import overlaps the workers' compile",
    ("compiler.program", "compiler.build"): "only what runs native code imports Numba",
    ("compiler.worker", "compiler.build"): "the worker imports Numba after setting itself up",
}


def _modules():
    """(dotted name, path) of every module of tracegrad/ and compiler/."""
    for pkg in ("tracegrad", "compiler"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _resolve(module, node, is_package):
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module, path):
    """(top-level imports, in-function imports) of project modules."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    top, inner = set(), set()

    def names(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        target = _resolve(module, node, is_package)
        # `from pkg import sub` imports the submodule (the package is loaded already)
        subs = [f"{target}.{a.name}" for a in node.names]
        return subs if any(s in MODULES for s in subs) else [target]

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found = [n for n in names(node) if n.split(".")[0] in ("tracegrad", "compiler")]
            (top if node.col_offset == 0 else inner).update(found)
    return top, inner


MODULES = dict(_modules())


def _graph():
    mods = MODULES
    graph = {}
    for name, path in mods.items():
        top, inner = _imports(name, path)
        graph[name] = ({m for m in top if m in mods and m != name},
                       {m for m in inner if m in mods and m != name})
    return graph


def test_no_module_imports_a_project_module_inside_a_function():
    bad = sorted((m, t) for m, (_, inner) in _graph().items() for t in inner if (m, t) not in LAZY)
    assert not bad, f"in-function imports (make them top-level, or list the reason in LAZY): {bad}"


def test_the_module_graph_has_no_cycle():
    graph = {m: deps for m, (deps, _) in _graph().items()}
    # a package's __init__ importing its own submodules is how a package exposes them
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
