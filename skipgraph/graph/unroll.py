"""Loop unrolling: body nodes become one copy per iteration sharing weights.

``E[0]`` in a loop of 3 becomes ``E[0]@1``, ``E[0]@2``, ``E[0]@3`` (submodules ``E0``,
``E0_t2``, ``E0_t3``). Edges inside the body repeat per iteration; edges into the body feed
every iteration; edges out of it take the last iteration (``collect: last``) or every iteration
(``collect: all``). A loop-carried edge ``D[i] -> E[i]`` becomes ``D[i]@k -> E[i]@k+1``, and
``E[i]@1`` gets a :class:`CarryInit` in that slot. Copies whose output reaches no head (the
first iterations of a decoder without a backward skip) are dropped afterwards, and weights are
then tied to the first live copy (:func:`tie_copies`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .ir import CarryInit, IREdge, IRGraph, IRNode

__all__ = ["LoopPlan", "unroll", "drop_dead_copies", "tie_copies"]


@dataclass
class LoopPlan:
    name: str
    body: set[str]                      # folded node ids
    times: int
    norm: str                           # per_step | shared
    carries: list[tuple[str, str, str, str]] = field(default_factory=list)  # src, dst, fam, init


def _copy_id(node_id: str, k: int) -> str:
    return f"{node_id}@{k}"


def _copy_name(name: str, k: int) -> str:
    return name if k == 1 else f"{name}_t{k}"


def unroll(ir: IRGraph, plan: LoopPlan, carry_channels: dict[str, int]) -> dict[str, str]:
    """Unroll ``plan`` in place; returns folded id -> id of its last iteration."""
    t = plan.times
    old_edges = [d["ir"] for _, _, d in ir.graph.edges(data=True)]
    for nid in [n for n in ir.graph.nodes if n in plan.body]:
        node = ir.node(nid)
        for k in range(1, t + 1):
            ir.add_node(dataclasses.replace(node, id=_copy_id(nid, k),
                                            name=_copy_name(node.name, k), folded=nid,
                                            loop=plan.name, step=k))
    for e in old_edges:
        for src, dst in _edge_copies(e, plan):
            ir.add_edge(dataclasses.replace(e, src=src, dst=dst, name=_edge_name(ir, e, src,
                                                                                  dst)))
    for src, dst, fam, init in plan.carries:
        for k in range(1, t):
            s, d = _copy_id(src, k), _copy_id(dst, k + 1)
            ir.add_edge(IREdge(s, d, fam, "backward", origin=None,
                               name=_edge_name(ir, None, s, d, fam)))
        first = ir.node(_copy_id(dst, 1))
        ir.add_node(dataclasses.replace(first, carry_inits=first.carry_inits + (
            CarryInit(fam, init, carry_channels[src]),)))
    ir.graph.remove_nodes_from(plan.body)
    return {nid: _copy_id(nid, t) for nid in plan.body}


def _edge_copies(e: IREdge, plan: LoopPlan) -> list[tuple[str, str]]:
    """(src, dst) of each unrolled copy of an edge that touches the loop body."""
    src_in, dst_in = e.src in plan.body, e.dst in plan.body
    steps = range(1, plan.times + 1)
    if src_in and dst_in:
        return [(_copy_id(e.src, k), _copy_id(e.dst, k)) for k in steps]
    if dst_in:
        return [(e.src, _copy_id(e.dst, k)) for k in steps]
    if src_in:
        ks = steps if e.collect == "all" else [plan.times]
        return [(_copy_id(e.src, k), e.dst) for k in ks]
    return []


def _edge_name(ir: IRGraph, e: IREdge | None, src: str, dst: str, family: str = "") -> str:
    return f"{family or e.family}_{ir.node(src).name}_{ir.node(dst).name}"


def drop_dead_copies(ir: IRGraph) -> None:
    """Remove unrolled copies whose output reaches no head."""
    live = ir.ancestors(h.node for h in ir.heads.values())
    ir.graph.remove_nodes_from([n for n in list(ir.graph.nodes)
                                if ir.node(n).step and n not in live])


def tie_copies(ir: IRGraph, norms: dict[str, str]) -> None:
    """Point every later copy at the first live copy of the same node or edge: the same module
    (``norm: shared``) or a module tied to it (``per_step``: own norms, shared weights)."""
    first_node: dict[str, str] = {}
    for node in sorted((ir.node(n) for n in ir.graph.nodes if ir.node(n).step),
                       key=lambda n: n.step):
        canon = first_node.setdefault(node.folded, node.name)
        if canon != node.name:
            ir.add_node(_tie(node, canon, norms[node.loop]))
    first_edge: dict[tuple, str] = {}
    edges = [(max(ir.node(e.src).step, ir.node(e.dst).step), e)
             for e in (d["ir"] for _, _, d in ir.graph.edges(data=True))]
    for step, e in sorted(edges, key=lambda se: se[0]):
        if not step or e.kind == "backward":
            continue
        key = (e.family, ir.node(e.src).folded or e.src, ir.node(e.dst).folded or e.dst)
        canon = first_edge.setdefault(key, e.name)
        loop = ir.node(e.src).loop or ir.node(e.dst).loop
        if canon != e.name:
            ir.add_edge(_tie(e, canon, norms[loop]))


def _tie(obj, canon: str, norm: str):
    return dataclasses.replace(obj, module=canon) if norm == "shared" else \
        dataclasses.replace(obj, tied_to=canon)
