"""Structural checks of the IR, like ``torch.fx.Graph.lint``: every failure is reported, each
naming the node and the edge family (with its source position) that caused it.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx

from ..errors import DiagnosticSink, SpecError, Diagnostic
from .contract import InputContract
from .ir import INPUT_ID, IRGraph

__all__ = ["validate", "check_input_shape"]


def validate(ir: IRGraph) -> IRGraph:
    """Check cycles, inputs, reachability, dead nodes and resampling directions."""
    sink = DiagnosticSink()
    _check_cycles(ir, sink)
    sink.raise_if_any()  # the checks below need a DAG
    _check_connectivity(ir, sink)
    _check_levels(ir, sink)
    _check_head_contracts(ir, sink)
    _check_gates(ir, sink)
    sink.raise_if_any()
    return ir


def _check_gates(ir: IRGraph, sink: DiagnosticSink) -> None:
    """A gated edge's node receives an edge of the gating family (the gate's signal)."""
    for e in ir.edges():
        if e.gate_by and not any(x.family == e.gate_by for x in ir.in_edges(e.dst)):
            span, key, _ = _span_of(ir, e.src, e.dst)
            sink.error("unknown-family", f"the gate on {e.src} -> {e.dst} is driven by edge "
                       f"family `{e.gate_by}`, which has no edge into {e.dst}", span, key=key,
                       hint="gate this edge by a family that reaches the node (split the "
                       "family with `if:` where the signal comes from another family)")


def _span_of(ir: IRGraph, src: str, dst: str):
    e = ir.edge(src, dst)
    return (e.origin.span if e.origin else None), f"edges.{e.family}", e.family


def _check_cycles(ir: IRGraph, sink: DiagnosticSink) -> None:
    loops: dict[str, list[str]] = {}
    for src, dst in nx.selfloop_edges(ir.graph):
        loops.setdefault(ir.edge(src, dst).family, []).append(src)
    for fam, nodes in loops.items():
        span, key, _ = _span_of(ir, nodes[0], nodes[0])
        sink.error("cycle-outside-loop", f"edge family `{fam}` connects "
                   f"{', '.join(nodes)} to {'itself' if len(nodes) == 1 else 'themselves'}",
                   span, hint="exclude them with an `if:` condition", key=key)
    graph = ir.graph.copy()
    graph.remove_edges_from(list(nx.selfloop_edges(graph)))
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([cycle[0][0]] + [dst for _, dst in cycle])
    families = sorted({ir.edge(s, d).family for s, d in cycle})
    span, key, _ = _span_of(ir, *cycle[-1])
    sink.error("cycle-outside-loop", f"cycle {path} (edge families: {', '.join(families)}) "
               "is not a declared loop", span, key=key,
               hint="an edge family probably points the wrong way")


def _check_connectivity(ir: IRGraph, sink: DiagnosticSink) -> None:
    reached = nx.descendants(ir.graph, INPUT_ID) | {INPUT_ID}
    useful = ir.ancestors(h.node for h in ir.heads.values()) if ir.heads else set(ir.graph)
    for node in ir.nodes():
        if node.is_input:
            continue
        span = node.origin.span if node.origin else None
        key = f"nodes.{node.family}"
        if ir.graph.in_degree(node.id) == 0:
            sink.error("no-input", f"node {node.id} receives no input", span, key=key,
                       hint="add an edge family into it, or exclude it from the node family")
        elif node.id not in reached:
            sink.error("unreachable", f"node {node.id} is not reached from the input", span,
                       key=key)
        if node.id not in useful:
            sink.error("dead-node", f"the output of node {node.id} reaches no head", span,
                       key=key, hint="add an edge from it, a head on it, or drop the node")


def _check_levels(ir: IRGraph, sink: DiagnosticSink) -> None:
    for e in ir.edges():
        if e.resample is None:
            continue
        going_up = ir.node(e.dst).in_level < ir.node(e.src).level
        if e.resample.is_up != going_up:
            direction = "up" if going_up else "down"
            span = e.origin.span if e.origin else None
            sink.error("level-mismatch", f"edge {e.src} -> {e.dst} ({e.family}) goes {direction} "
                       f"a level but uses `{e.resample.op}`", span, key=f"edges.{e.family}",
                       hint=f"set the family's `{'up' if going_up else 'down'}:` op accordingly")


def _check_head_contracts(ir: IRGraph, sink: DiagnosticSink) -> None:
    """What a pixel-wise head declares to the loss and evaluation (its ``activation()`` and
    ``target_rule()``, see :class:`skipgraph.heads.HeadType`) is a known value; and the one
    pairing that cannot train is refused: a softmax over one channel (its output is always 1,
    so no gradient reaches it)."""
    from ..heads import ACTIVATIONS, TARGET_RULES
    for head in ir.heads.values():
        if not head.pixelwise:
            continue
        span = head.origin.span if head.origin else None
        where = f"head {head.id} ({head.family}, type `{head.type}`)"
        act, rule = head.activation, head.target_rule
        if act not in ACTIVATIONS or rule not in TARGET_RULES:
            bad = (f"activation() {act!r}, not one of {', '.join(ACTIVATIONS)}"
                   if act not in ACTIVATIONS else
                   f"target_rule() {rule!r}, not one of {', '.join(TARGET_RULES)}")
            sink.error("head-contract", f"{where} declares {bad}", span,
                       key=f"heads.{head.family}",
                       hint=f"fix `{type(head.settings).__name__}` (skipgraph.heads.HeadType)")
        elif act == "softmax" and head.out_channels == 1:
            sink.error("head-loss-mismatch", f"head {head.id} ({head.family}) is a softmax over "
                       f"1 channel: its output is constantly 1 and the loss "
                       f"`{ir.loss.get('seg', 'bce_dice')}` gets no gradient", span,
                       key=f"heads.{head.family}",
                       hint="use `act: sigmoid` for one class, or `out:` >= 2 classes")


def check_input_shape(ir: IRGraph, shape: Sequence[int]) -> None:
    """Raise SpecError (``bad-input-size``) unless ``shape`` (N, C, *spatial) fits the
    network's :class:`InputContract`: its rank, its channels, and (unless the spec pads)
    spatial sizes that are multiples of the total stride."""
    contract = InputContract.of(ir)
    problem = contract.problem(shape)
    if problem:
        raise SpecError([Diagnostic("bad-input-size", problem,
                                    hint=_input_hint(ir, contract, shape))])


def _input_hint(ir: IRGraph, contract: InputContract, shape: Sequence[int]) -> str:
    """How to make ``shape`` and the network agree: the spec's own param (``--set dims=2``,
    ``--set in_channels=1``) where it declares one, else the input to give."""
    if len(shape) != ir.dims + 2:
        dims = len(shape) - 2
        if "dims" in ir.params and dims in (2, 3):
            return f"--set dims={dims} builds the spec in {dims}D, or give a {ir.dims + 2}-d " \
                "input"
        return f"give a {ir.dims + 2}-d input, e.g. 1x{ir.in_channels}x" + \
            "x".join(["64"] * ir.dims)
    if shape[1] != ir.in_channels:
        if "in_channels" in ir.params:
            return f"--set in_channels={shape[1]} builds the spec for {shape[1]} channel(s), " \
                f"or give {ir.in_channels}"
        return f"give an input with {ir.in_channels} channel(s)"
    return f"use sizes that are multiples of {contract.stride}"
