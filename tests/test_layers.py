"""The house's guard rail: imports run one way down the layers of DESIGN.md, with no circles and no private borrowing.

Layers, bottom first: errors -> platform -> datasets -> algorithms (errors only, besides torch and
numpy) -> evaluation -> leaderboards -> web, cli; testing may use them all. A module imports bench
modules of its own layer or of layers below. Every import counts, inside functions too. What the
code still breaks would be listed in KNOWN_DEBTS (empty since issue 16): a new violation fails, and so
does a listed one that has gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "bench"
ORDER = ["errors", "platform", "datasets", "algorithms", "evaluation", "leaderboards", "web", "cli", "testing"]
SAME_RANK = {"web": "cli"}  # web and cli sit side by side and do not import each other

# (importer, imported) edges that run against the layers, module circles, and private imports that exist today.
KNOWN_DEBTS = {
    "layer": set(),
    "circle": set(),
    "private": set(),
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    top = parts[1]
    return top if top in ORDER else None


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """Every module's bench imports: (imported module, names taken from it)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges += [(alias.name, []) for alias in node.names if alias.name.startswith("bench")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench") and not node.level:
                edges.append((node.module, [alias.name for alias in node.names]))
        found[_module_name(path)] = edges
    return found


def _violations() -> dict[str, set]:
    imports = _imports()
    modules = set(imports)
    layer, private, graph = set(), set(), {m: set() for m in modules}
    for importer, edges in imports.items():
        for imported, names in edges:
            # `from package import submodule` depends on the submodule (and runs the package's __init__,
            # which every submodule import does anyway): an edge to the package only for other names.
            submodules = [f"{imported}.{n}" for n in names if f"{imported}.{n}" in modules]
            targets = submodules + ([imported] if len(submodules) < len(names) or not names else [])
            for target in targets:
                if target in modules and target != importer:
                    graph[importer].add(target)
            mine, theirs = _layer(importer), _layer(imported)
            if mine and theirs and mine != "testing" and mine != theirs:
                if ORDER.index(theirs) > ORDER.index(mine) or SAME_RANK.get(mine) == theirs or (
                        mine == "algorithms" and theirs != "errors"):
                    layer.add((importer, imported))
            for name in names:
                if name.startswith("_") and imported != importer:
                    private.add((importer, f"{imported}.{name}"))
    return {"layer": layer, "circle": _circles(graph), "private": private}


def _circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted tuple."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), set(), [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_imports_run_one_way_without_circles_or_private_borrowing():
    violations = _violations()
    for kind in ("layer", "circle", "private"):
        new = violations[kind] - KNOWN_DEBTS[kind]
        paid = KNOWN_DEBTS[kind] - violations[kind]
        assert not new, f"new {kind} violations (DESIGN.md, 'Layout'): {sorted(new)}"
        assert not paid, f"these {kind} debts are paid: remove them from KNOWN_DEBTS: {sorted(paid)}"
