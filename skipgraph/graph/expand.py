"""Expansion: a resolved spec -> explicit IR nodes, edges and heads (channels filled later).

Node families iterate their ``for:`` ranges in the order written (later ranges may use earlier
variables) and keep the combinations where ``if:`` holds. Edge families bind the ``to:`` pattern
against existing nodes, iterate their own ``for:`` ranges, and add an edge wherever the ``from:``
node exists: Eq. 1 of a paper is defined "where defined", so ``X[i+1,j-1]`` for ``j = 0`` simply
yields nothing. A family that yields nothing at all is an error (it is almost always a typo).

Concat order (documented and deterministic): edge families in the order of the node family's
``order:`` list, else as written under ``edges:`` (loop-carried families, then backbone stage
chains, after them); within a family, the order the family enumerates its sources for that
node: its ``for:`` bindings in the order written and counted (``for: {k: j-1..0 by -1}`` puts
``X[i,j-1]`` first); the copies of one edge out of a loop (``collect: all``) by iteration.
"""
from __future__ import annotations

from .expand_base import MAX_EDGES, MAX_NODES, MAX_STEPS, MAX_WIDTH, ExpanderBase
from .expand_edges import EdgeExpansion
from .expand_heads import HeadExpansion
from .expand_loops import LoopExpansion
from .expand_nodes import NodeExpansion
from .ir import IRGraph
from .unroll import drop_dead_copies, tie_copies
from ..spec.loader import ResolvedSpec

__all__ = ["expand", "MAX_NODES", "MAX_EDGES", "MAX_STEPS", "MAX_WIDTH"]


def expand(rs: ResolvedSpec) -> IRGraph:
    """Build the IR of ``rs`` (channels are left 0: see :func:`skipgraph.graph.infer.infer`)."""
    ex = _Expander(rs)
    ex.run()
    ex.sink.raise_if_any()
    return ex.ir


class _Expander(NodeExpansion, EdgeExpansion, LoopExpansion, HeadExpansion, ExpanderBase):
    """The passes in order; each part lives in its own module (expand_nodes, expand_edges,
    expand_loops, expand_heads; shared state and helpers: expand_base)."""

    def run(self) -> None:
        self._add_input()
        for name in self.spec.nodes:
            self._expand_node_family(name)
        self._check_strides()
        if self.sink.items:
            return
        for name, fam in self.spec.edges.items():
            self._expand_edge_family(name, fam)
        if self.sink.items:
            return
        self._expand_loops()
        if self.sink.items:
            return
        self._assign_slots()
        for name in self.spec.heads:
            self._expand_head_family(name)
        self._link_gates()
        drop_dead_copies(self.ir)
        tie_copies(self.ir, {n: lp.norm for n, lp in self.spec.loops.items()})
        self._set_output()
