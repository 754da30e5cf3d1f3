"""IR -> ``torch.fx.Graph``: straight-line code, one value per IR node, named after it.

The graph is built node by node (never by exec-ing strings). Param-free resampling (pooling,
interpolation) becomes a function call and is computed once per (source, op) even when several
edges need it. Only the ancestors of the requested heads are emitted, so a graph for one head is
already a pruned graph.
"""
from __future__ import annotations

import operator
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import networkx as nx
import torch
import torch.fx as fx
import torch.nn as nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from ..graph.ir import INPUT_ID, IREdge, IRGraph
from ..heads import get_head
from ..resampling import get_resample

__all__ = ["make_graph"]


def make_graph(ir: IRGraph, head_ids: list[str], combine: str, module_names: set[str],
               recompute: frozenset[str] = frozenset()) -> tuple[fx.Graph, dict[str, fx.Graph]]:
    """A graph computing ``head_ids``; ``combine`` is ``dict`` (all heads by id), ``list`` (in
    ``head_ids`` order), ``mean`` or ``single``. Nodes of a family in ``recompute`` run one by one under activation
    checkpointing; each iteration of a loop in ``recompute`` is one checkpointed segment, a
    graph of its own (returned by name beside the main graph) that keeps only what enters and
    leaves the iteration for the backward pass."""
    g = fx.Graph()
    needed = ir.ancestors(ir.heads[h].node for h in ir.needed_heads(head_ids))
    values: dict[str, fx.Node] = {INPUT_ID: g.placeholder("x")}
    shared: dict[tuple, fx.Node] = {}
    segments: dict[str, fx.Graph] = {}
    for unit in _units(ir, needed, recompute):
        if unit[0].loop and unit[0].loop in recompute:
            segments.update(_emit_segment(g, ir, unit, values, needed, module_names))
        else:
            node = unit[0]
            values[node.id] = _emit_node(g, ir, node, values, shared, module_names,
                                         node.family in recompute)
    done: dict[str, fx.Node] = {}
    outs = {h: _head_value(g, ir, h, values, done) for h in head_ids}
    if combine == "dict":
        g.output(outs)
    elif combine == "list":
        g.output(list(outs.values()))
    elif combine == "single" or len(outs) == 1:
        g.output(next(iter(outs.values())))
    else:
        stacked = g.call_function(torch.stack, (list(outs.values()),), {"dim": 0})
        g.output(g.call_function(torch.mean, (stacked,), {"dim": 0}))
    g.lint()
    return g, segments


def _emit_node(g: fx.Graph, ir: IRGraph, node, values: dict[str, fx.Node], shared: dict,
               module_names: set[str], recompute: bool) -> fx.Node:
    merged = _merge(g, ir, node, _input_values(g, ir, node, values, shared, module_names))
    if recompute:
        return g.create_node("call_function", checkpointed, (g.get_attr(node.module_name),
                                                             merged), name=node.name)
    return g.create_node("call_module", node.module_name, (merged,), name=node.name)


def checkpointed(fn: nn.Module, *args: Any) -> Any:
    """``fn(*args)`` under (non-reentrant) activation checkpointing. The recomputation in the
    backward pass leaves the norm layers' running statistics as the forward pass left them:
    without this, a checkpointed BatchNorm would update them twice per step."""
    if torch.compiler.is_compiling():  # compiled code recomputes without mutating buffers
        return torch_checkpoint(fn, *args, use_reentrant=False)
    return torch_checkpoint(fn, *args, use_reentrant=False,
                            context_fn=lambda: (nullcontext(), _running_stats_kept(fn)))


@contextmanager
def _running_stats_kept(fn: nn.Module) -> Iterator[None]:
    saved = [(buf, buf.clone()) for m in fn.modules() if getattr(m, "track_running_stats", False)
             for buf in m.buffers(recurse=False)]
    try:
        yield
    finally:  # also when the recomputation stops early (torch raises inside it to stop)
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def _units(ir: IRGraph, needed: set[str], recompute: frozenset[str]) -> list[list]:
    """The needed nodes in topological order, each loop iteration under checkpointing grouped
    into one unit (placed where all its inputs are ready)."""
    nodes = [n for n in ir.nodes() if not n.is_input and n.id in needed]
    if not any(n.loop and n.loop in recompute for n in nodes):
        return [[n] for n in nodes]  # nothing to group: the topological order as it is

    def key(n) -> str:
        return f"{n.loop}\0{n.step}" if n.loop and n.loop in recompute else n.id
    units: dict[str, list] = {}
    for n in nodes:
        units.setdefault(key(n), []).append(n)
    first = {k: i for i, k in enumerate(units)}
    condensed = nx.DiGraph()
    condensed.add_nodes_from(units)
    keys = {n.id: key(n) for n in nodes}
    condensed.add_edges_from((keys[u], keys[v]) for u, v in ir.graph.edges
                             if u in keys and v in keys and keys[u] != keys[v])
    # a loop iteration never depends on itself through nodes outside it (that would be a cycle
    # of the unrolled graph, which validation rejects), so the condensed graph is acyclic
    return [units[k] for k in nx.lexicographical_topological_sort(condensed, key=first.get)]


def _emit_segment(g: fx.Graph, ir: IRGraph, unit: list, values: dict[str, fx.Node],
                  needed: set[str], module_names: set[str]) -> dict[str, fx.Graph]:
    """One loop iteration as its own graph, called through torch.utils.checkpoint."""
    members = {n.id for n in unit}
    sg = fx.Graph()
    external = list(dict.fromkeys(e.src for n in unit for e in ir.in_edges(n.id)
                                  if e.src not in members))
    local = {src: sg.placeholder(values[src].name) for src in external}
    shared: dict[tuple, fx.Node] = {}
    for n in unit:
        local[n.id] = _emit_node(sg, ir, n, local, shared, module_names, False)
    head_nodes = {h.node for h in ir.heads.values()}
    leaving = [n for n in unit if n.id in head_nodes or any(
        s in needed and s not in members for s in ir.graph.successors(n.id))]
    sg.output(tuple(local[n.id] for n in leaving))
    sg.lint()
    name = f"seg_{unit[0].loop}_t{unit[0].step}"
    call = g.create_node("call_function", checkpointed,
                         (g.get_attr(name), *(values[src] for src in external)), name=name)
    for i, n in enumerate(leaving):
        values[n.id] = g.create_node("call_function", operator.getitem, (call, i), name=n.name)
    return {name: sg}


def _input_values(g: fx.Graph, ir: IRGraph, node, values: dict[str, fx.Node], shared: dict,
                  module_names: set[str]) -> list[fx.Node]:
    """The node's inputs in slot order: edge values (attention-gated where declared) and the
    first-iteration stand-ins of loop-carried inputs."""
    edges = ir.in_edges(node.id)
    by_slot = {e.slot: _edge_value(g, ir, e, values[e.src], shared, module_names)
               for e in edges}
    for e in edges:
        if e.gate_by:
            gating = next(x for x in edges if x.family == e.gate_by)
            by_slot[e.slot] = g.create_node("call_module", e.gate_name,
                                            (by_slot[gating.slot], by_slot[e.slot]),
                                            name=e.gate_name)
    first = by_slot[min(by_slot)] if by_slot else None
    for c in node.carry_inits:
        if c.mode == "zeros" and node.merge == "sum":
            continue  # adding zeros changes nothing
        by_slot[c.slot] = first if c.mode == "duplicate" else g.create_node(
            "call_function", carry_zeros, (first, c.channels), name=f"{node.name}_{c.family}0")
    return [by_slot[k] for k in sorted(by_slot)]


def _merge(g: fx.Graph, ir: IRGraph, node, inputs: list[fx.Node]) -> fx.Node:
    if len(inputs) == 1:
        return inputs[0]
    if node.merge == "concat":
        return g.create_node("call_function", torch.cat, (inputs,), {"dim": 1},
                             name=f"{node.name}_in")
    op = operator.mul if node.merge == "product" else operator.add
    merged = inputs[0]
    for other in inputs[1:]:
        merged = g.call_function(op, (merged, other))
    return merged


def carry_zeros(ref: torch.Tensor, channels: int) -> torch.Tensor:
    """Zeros standing in for a loop-carried input at the first iteration."""
    return ref.new_zeros((ref.shape[0], channels, *ref.shape[2:]))


def _edge_value(g: fx.Graph, ir: IRGraph, e: IREdge, value: fx.Node, shared: dict,
                module_names: set[str]) -> fx.Node:
    """[dropout at source] -> [module: conv at source] -> param-free resample -> [module: the
    rest] -> [dropout at target], as the IR says."""
    dropped = e.drop_name in module_names
    if dropped and e.dropout_at == "source":
        value = g.create_node("call_module", e.drop_name, (value,), name=e.drop_name)
    r = e.resample
    has_module = e.module_name in module_names
    if has_module and e.conv_at == "source" and e.conv_width is not None:
        # the module holds conv (and any parametric resampling) before the param-free op
        value = g.create_node("call_module", e.module_name, (value,), name=e.name)
        has_module = False
    if r is not None and not r.has_params:
        # the same call on the same value is computed once (norm/act live in the edge module)
        key = (value.name, r.factor,
               repr(r.settings.model_dump(exclude={"norm", "act", "order"})))
        if key not in shared:
            shared[key] = _param_free_resample(g, ir.dims, r, value, value.name)
        value = shared[key]
    if has_module:
        value = g.create_node("call_module", e.module_name, (value,), name=e.name)
    if dropped and e.dropout_at == "target":
        value = g.create_node("call_module", e.drop_name, (value,), name=e.drop_name)
    return value


def _param_free_resample(g: fx.Graph, dims: int, r: Any, value: fx.Node, src: str) -> fx.Node:
    fn, kwargs = get_resample(r.op).load_builder().call(dims, r.factor, r.settings)
    return g.create_node("call_function", fn, (value,), kwargs,
                         name=r.settings.value_name(src, r.factor))


def _head_value(g: fx.Graph, ir: IRGraph, head_id: str, values: dict[str, fx.Node],
                done: dict[str, fx.Node]) -> fx.Node:
    """A head's output: conv [-> resize to full] [-> act] [-> CGM gate]; each head once."""
    if head_id in done:
        return done[head_id]
    head = ir.heads[head_id]
    out = g.create_node("call_module", head.name, (values[head.node],), name=head.name)
    for fn, kwargs, suffix in get_head(head.type).load_builder().steps(ir.dims, head):
        out = g.create_node("call_function", fn, (out,), kwargs, name=f"{head.name}_{suffix}")
    if head.gate is not None:
        gate = get_head(ir.heads[head.gate].type).load_builder().gate
        probs = _head_value(g, ir, head.gate, values, done)
        out = g.create_node("call_function", gate, (out, probs), name=f"{head.name}_gated")
    done[head_id] = out
    return out
