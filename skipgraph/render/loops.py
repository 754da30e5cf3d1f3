"""Views of an unrolled IR for drawing: folded (one node per loop node, backward skips as
edges between them, a "x t" label) or unrolled (iterations side by side)."""
from __future__ import annotations

import dataclasses

import networkx as nx

from ..graph.ir import IRGraph

__all__ = ["folded_view", "unrolled_view", "loop_times"]


def loop_times(ir: IRGraph) -> dict[str, int]:
    """loop name -> iterations (the highest step of its nodes)."""
    out: dict[str, int] = {}
    for n in ir.graph.nodes:
        node = ir.node(n)
        if node.loop:
            out[node.loop] = max(out.get(node.loop, 0), node.step)
    return out


def folded_view(ir: IRGraph) -> IRGraph:
    """Each loop node once (its first live copy, under its folded id); edges deduplicated."""
    if not loop_times(ir):
        return ir
    rep: dict[str, str] = {}   # node id -> folded id
    view = dataclasses.replace(ir, graph=nx.DiGraph())
    for node in sorted((ir.node(n) for n in ir.graph.nodes), key=lambda n: n.step):
        fid = node.folded or node.id
        rep[node.id] = fid
        if fid not in view.graph:
            view.add_node(dataclasses.replace(node, id=fid))
    for e in ir.edges():
        src, dst = rep[e.src], rep[e.dst]
        if not view.graph.has_edge(src, dst) or e.kind == "backward":
            view.add_edge(dataclasses.replace(e, src=src, dst=dst))
    view.heads = {h: dataclasses.replace(head, node=rep[head.node])
                  for h, head in ir.heads.items()}
    return view


def unrolled_view(ir: IRGraph) -> IRGraph:
    """Iteration k of a loop drawn k - 1 body-widths to the right; what follows the loop moves
    right by the whole unrolled width."""
    times = loop_times(ir)
    if not times:
        return ir
    cols = [ir.node(n).column for n in ir.graph.nodes if ir.node(n).loop]
    lo, hi = min(cols), max(cols)
    span = hi - lo + 1
    view = dataclasses.replace(ir, graph=ir.graph.copy())
    t = max(times.values())
    for n in ir.graph.nodes:
        node = ir.node(n)
        if node.loop:
            view.add_node(dataclasses.replace(node, column=node.column + (node.step - 1) * span))
        elif node.column > hi:
            view.add_node(dataclasses.replace(node, column=node.column + (t - 1) * span))
    return view
