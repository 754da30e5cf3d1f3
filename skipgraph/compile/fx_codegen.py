"""IR -> ``torch.fx.Graph``: straight-line code, one value per IR node, named after it.

The graph is built node by node (never by exec-ing strings). Param-free resampling (pooling,
interpolation) becomes a function call and is computed once per (source, op) even when several
edges need it. Only the ancestors of the requested heads are emitted, so a graph for one head is
already a pruned graph.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from ..blocks.heads import cgm_gate
from ..blocks.layers import AVG_POOL, MAX_POOL, interp_mode
from ..graph.ir import INPUT_ID, IREdge, IRGraph

__all__ = ["make_graph"]


def make_graph(ir: IRGraph, head_ids: list[str], combine: str, module_names: set[str],
               checkpoint: frozenset[str] = frozenset()) -> fx.Graph:
    """A graph computing ``head_ids``; ``combine`` is ``dict`` (all heads by id), ``mean`` or
    ``single``. Nodes whose family or loop is in ``checkpoint`` run under activation
    checkpointing (their activations are recomputed in the backward pass)."""
    g = fx.Graph()
    needed = ir.ancestors(ir.heads[h].node for h in ir.needed_heads(head_ids))
    values: dict[str, fx.Node] = {INPUT_ID: g.placeholder("x")}
    shared: dict[tuple, fx.Node] = {}
    for node in ir.nodes():
        if node.is_input or node.id not in needed:
            continue
        merged = _merge(g, ir, node, _input_values(g, ir, node, values, shared, module_names))
        if node.family in checkpoint or (node.loop and node.loop in checkpoint):
            fn = g.get_attr(node.module_name)
            values[node.id] = g.create_node("call_function", torch_checkpoint, (fn, merged),
                                            {"use_reentrant": False}, name=node.name)
        else:
            values[node.id] = g.create_node("call_module", node.module_name, (merged,),
                                            name=node.name)
    done: dict[str, fx.Node] = {}
    outs = {h: _head_value(g, ir, h, values, done) for h in head_ids}
    if combine == "dict":
        g.output(outs)
    elif combine == "single" or len(outs) == 1:
        g.output(next(iter(outs.values())))
    else:
        stacked = g.call_function(torch.stack, (list(outs.values()),), {"dim": 0})
        g.output(g.call_function(torch.mean, (stacked,), {"dim": 0}))
    g.lint()
    return g


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
    merged = inputs[0]
    for other in inputs[1:]:
        merged = g.call_function(operator.add, (merged, other))
    return merged


def carry_zeros(ref: torch.Tensor, channels: int) -> torch.Tensor:
    """Zeros standing in for a loop-carried input at the first iteration."""
    return ref.new_zeros((ref.shape[0], channels, *ref.shape[2:]))


def _edge_value(g: fx.Graph, ir: IRGraph, e: IREdge, value: fx.Node, shared: dict,
                module_names: set[str]) -> fx.Node:
    """[module: conv at source] -> param-free resample -> [module: the rest], as the IR says."""
    r = e.resample
    has_module = e.module_name in module_names
    if has_module and e.conv_at == "source" and e.conv_width is not None:
        # the module holds conv (and any parametric resampling) before the param-free op
        value = g.create_node("call_module", e.module_name, (value,), name=e.name)
        has_module = False
    if r is not None and not r.has_params:
        key = (value.name, r.op, r.factor, r.ceil, r.mode)
        if key not in shared:
            shared[key] = _param_free_resample(g, ir.dims, r, value, value.name)
        value = shared[key]
    if has_module:
        value = g.create_node("call_module", e.module_name, (value,), name=e.name)
    return value


def _param_free_resample(g: fx.Graph, dims: int, r: Any, value: fx.Node, src: str) -> fx.Node:
    if r.op in ("maxpool", "avgpool"):
        fn = (MAX_POOL if r.op == "maxpool" else AVG_POOL)[dims]
        return g.create_node("call_function", fn, (value,),
                             {"kernel_size": r.factor, "stride": r.factor, "ceil_mode": r.ceil},
                             name=f"{src}_{r.op}{r.factor}")
    kwargs: dict[str, Any] = {"scale_factor": r.factor, "mode": interp_mode(r.op, dims)}
    if r.op == "bilinear":
        kwargs["align_corners"] = False
    return g.create_node("call_function", F.interpolate, (value,), kwargs,
                         name=f"{src}_up{r.factor}")


def _head_value(g: fx.Graph, ir: IRGraph, head_id: str, values: dict[str, fx.Node],
                done: dict[str, fx.Node]) -> fx.Node:
    """A head's output: conv [-> resize to full] [-> act] [-> CGM gate]; each head once."""
    if head_id in done:
        return done[head_id]
    head = ir.heads[head_id]
    out = g.create_node("call_module", head.name, (values[head.node],), name=head.name)
    if head.type == "seg":
        if head.resize == "full" and head.level > 0:
            out = g.create_node("call_function", F.interpolate, (out,),
                                {"scale_factor": 2 ** head.level,
                                 "mode": interp_mode("bilinear", ir.dims),
                                 "align_corners": False}, name=f"{head.name}_full")
        if head.act == "sigmoid":
            out = g.create_node("call_function", torch.sigmoid, (out,),
                                name=f"{head.name}_sigmoid")
        elif head.act == "softmax":
            out = g.create_node("call_function", torch.softmax, (out,), {"dim": 1},
                                name=f"{head.name}_softmax")
        if head.gate is not None:
            probs = _head_value(g, ir, head.gate, values, done)
            out = g.create_node("call_function", cgm_gate, (out, probs),
                                name=f"{head.name}_gated")
    done[head_id] = out
    return out
