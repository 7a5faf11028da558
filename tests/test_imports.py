"""The package's import graph, read with ast, has no cycle, function-level imports included.

A function-level import only hides a circle (the modules still need each other); the graph counts
every `import` / `from ... import` in claimsfm/, cli/ (installed as claimsfm.cli) and kernels/
(claimsfm.kernels), except those under `if TYPE_CHECKING:`. `from pkg import name` is an edge to the
submodule pkg.name when there is one, else to pkg.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = {"claimsfm": ROOT / "claimsfm", "claimsfm.cli": ROOT / "cli", "claimsfm.kernels": ROOT / "kernels"}


def _modules() -> dict[str, Path]:
    out = {}
    for prefix, folder in TREES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([prefix, *parts])] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(module, names imported from it or None, line) of every import in the tree, relative ones resolved."""
    skip = {id(n) for n in ast.walk(tree) if isinstance(n, ast.If) and _is_type_checking(n)}
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in skip:
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from ((a.name, None, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parent, *([base] if base else [])])
            yield base, [a.name for a in node.names], node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported claimsfm module: line of the first such import}."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = {}
        for base, names, line in _imports(tree, name, path.name == "__init__.py"):
            subs = [f"{base}.{n}" for n in names or [] if f"{base}.{n}" in modules]
            targets = subs if names and len(subs) == len(names) else [base, *subs]
            for target in targets:
                if target in modules and target != name:
                    edges.setdefault(target, line)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in sorted(graph):
        if state[start]:
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 2}}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "claimsfm.data.format" in graph and "claimsfm.cli.main" in graph
    cycle = find_cycle(graph)
    where = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) if cycle else ""
    assert cycle is None, f"import cycle: {where} -> {cycle[-1] if cycle else ''}"
