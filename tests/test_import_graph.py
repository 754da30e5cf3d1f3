"""No import circle between modules of skipgraph/ (the pipeline is one-way, and the base field
types in skipgraph/fields/ sit below every stage and registry).

The graph is built with ``ast`` from the source files, without importing anything. An edge
``a -> b`` is any ``import``/``from ... import`` that module ``a`` executes, at module level or
inside a function (a function-level import is a circle that merely waits for its first call),
resolved to a module of skipgraph:

- ``from pkg import name`` where ``pkg/name.py`` exists is an edge to that submodule;
- importing ``skipgraph.x.y`` also executes ``skipgraph/x/__init__.py``: an edge to every
  package on the way, except those that contain the importing module (the root ``skipgraph``
  and the module's own packages are always imported before the module itself runs: importing
  them again is a no-op, not a circle);
- imports under ``if TYPE_CHECKING:`` never run and are not edges; ``load_object("pkg.mod:X")``
  strings (the registries' lazy builders) are not imports either.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PKG = Path(__file__).resolve().parent.parent / "skipgraph"
ROOT = "skipgraph"

def module_names(pkg: Path = PKG) -> dict[str, Path]:
    """Dotted module name -> file (a package is its ``__init__.py``)."""
    out = {}
    for f in sorted(pkg.rglob("*.py")):
        parts = list(f.relative_to(pkg.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


# IPython's display protocol: called by the notebook on an object that already exists, long
# after every stage is imported, so an import there cannot be part of an import-time circle
DISPLAY_HOOKS = {"_repr_svg_", "_repr_html_", "_repr_png_", "_repr_mimebundle_"}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines whose imports never run at import time: `if TYPE_CHECKING:` blocks and the
    bodies of notebook display hooks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
        elif isinstance(node, ast.FunctionDef) and node.name in DISPLAY_HOOKS:
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def imports_of(name: str, source: str, modules: set[str], is_package: bool) -> set[str]:
    """The skipgraph modules that module ``name`` imports (see the module docstring)."""
    tree = ast.parse(source)
    skip = _type_checking_lines(tree)
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets.add(mod)
            targets.update(f"{mod}.{alias.name}" for alias in node.names)
    edges = set()
    for target in targets:
        parts = target.split(".")
        for k in range(2, len(parts) + 1):  # the packages on the way, then the module
            prefix = ".".join(parts[:k])
            if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                edges.add(prefix)
    return edges


def import_graph(pkg: Path = PKG) -> nx.DiGraph:
    mods = module_names(pkg)
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        for target in imports_of(name, path.read_text(), set(mods), path.name == "__init__.py"):
            graph.add_edge(name, target)
    return graph


def circles(graph: nx.DiGraph) -> list[frozenset[str]]:
    """Sets of modules that import each other (strongly connected, more than one module)."""
    return [frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def _describe(graph: nx.DiGraph, circle: frozenset[str]) -> str:
    cycle = nx.find_cycle(graph.subgraph(circle))
    return " -> ".join([a for a, _ in cycle] + [cycle[0][0]])


def test_the_checker_finds_a_circle_through_a_package_and_a_function_import(tmp_path):
    pkg = tmp_path / "skipgraph"
    (pkg / "spec").mkdir(parents=True)
    (pkg / "blocks").mkdir()
    (pkg / "__init__.py").write_text("from .spec import loader\n")
    (pkg / "spec" / "__init__.py").write_text("from .loader import load\n")
    (pkg / "spec" / "loader.py").write_text("from ..blocks import registry\n")
    (pkg / "spec" / "axes.py").write_text("X = 1\n")
    (pkg / "blocks" / "__init__.py").write_text("")
    (pkg / "blocks" / "registry.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..spec import loader\n"
        "def f():\n    from skipgraph.spec.axes import X\n")
    graph = import_graph(pkg)
    # blocks.registry -> spec.axes runs spec/__init__ -> spec.loader -> blocks.registry
    assert circles(graph) == [frozenset({"skipgraph.spec", "skipgraph.spec.loader",
                                         "skipgraph.blocks.registry"})]
    (pkg / "blocks" / "registry.py").write_text("from skipgraph import spec\n")  # root: no edge
    assert circles(import_graph(pkg))  # ... but `spec` itself is one
    (pkg / "blocks" / "registry.py").write_text("import skipgraph\n")
    assert not circles(import_graph(pkg))


def test_no_import_circle_between_modules_of_skipgraph():
    graph = import_graph()
    assert graph.number_of_nodes() > 90 and graph.number_of_edges() > 250
    assert graph.has_edge("skipgraph.blocks.builtin", "skipgraph.fields.axes")
    found = circles(graph)
    assert not found, "\n".join(_describe(graph, c) for c in found)
