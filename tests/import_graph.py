"""The import graph of the ``interceptor`` package, read from its source (nothing is imported).

    python tests/import_graph.py          # the import cycles (strongly connected components), largest first

Each module's ``import`` and ``from ... import`` of interceptor modules is an edge, wherever it sits: at module
level or inside a function (a deferred import still runs, and one that dodges a cycle is the cycle), but not
under ``if TYPE_CHECKING:`` (it never runs). Importing a module from outside its package also runs the
package's ``__init__``, so that is an edge too. Deferred imports that keep heavy modules out of a start-up (the
command line's subcommands, ``data.frame_samples``' registry) point down the layers like any other import
(``tests/test_layers.py``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "interceptor"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__.py``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import node that runs, skipping ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
        else:
            yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that importing ``name`` (at ``path``) imports directly."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        targets.add(base)
        targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
    edges = set()
    for target in targets:
        while target and target not in modules:  # ``import a.b.c`` of a name that is an attribute, not a module
            target = target.rpartition(".")[0]
        if not target or target == name:
            continue
        edges.add(target)
        parent = target.rpartition(".")[0]
        while parent and not (name + ".").startswith(parent + "."):  # its packages' __init__s, from outside them
            edges.add(parent)
            parent = parent.rpartition(".")[0]
    return edges


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports."""
    modules = module_files(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` with more than one module (the import cycles),
    each sorted, the largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components, key=lambda c: (-len(c), c))


def main() -> int:
    cycles = strongly_connected(import_graph())
    for component in cycles:
        print(f"{len(component)} modules in one import cycle:")
        print("".join(f"  {name}\n" for name in component), end="")
    if not cycles:
        print("no import cycle")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
