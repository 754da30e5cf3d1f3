"""Structural checks of the IR, like ``torch.fx.Graph.lint``: every failure is reported, each
naming the node and the edge family (with its source position) that caused it.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx

from ..errors import DiagnosticSink, SpecError, Diagnostic
from .ir import INPUT_ID, IRGraph

__all__ = ["validate", "check_input_shape", "total_stride", "head_size", "padded_shape"]


def validate(ir: IRGraph) -> IRGraph:
    """Check cycles, inputs, reachability, dead nodes and resampling directions."""
    sink = DiagnosticSink()
    _check_cycles(ir, sink)
    sink.raise_if_any()  # the checks below need a DAG
    _check_connectivity(ir, sink)
    _check_levels(ir, sink)
    sink.raise_if_any()
    return ir


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
        going_up = ir.node(e.dst).level < ir.node(e.src).level
        if e.resample.is_up != going_up:
            direction = "up" if going_up else "down"
            span = e.origin.span if e.origin else None
            sink.error("level-mismatch", f"edge {e.src} -> {e.dst} ({e.family}) goes {direction} "
                       f"a level but uses `{e.resample.op}`", span, key=f"edges.{e.family}",
                       hint=f"set the family's `{'up' if going_up else 'down'}:` op accordingly")


def total_stride(ir: IRGraph) -> int:
    """How many input pixels one pixel of the deepest level covers, per side: 2**max_level.
    Inputs must be multiples of it, unless the spec says ``input: {pad: true}``."""
    return 2 ** ir.max_level


def head_size(size: int, level: int) -> int:
    """The side of a level-``level`` output for an input side ``size``: ``ceil(size / 2**level)``.

    Under ``input: {pad: true}`` the input is padded up to a multiple of the total stride and
    every output is cropped back to this size (a pixel that covers any input pixel is kept);
    without padding ``size`` is a multiple of ``2**level`` and it is exact. The module's crop
    and the losses' target shrinking both use it, so heads and targets always agree."""
    return -(-size // 2 ** level)


def padded_shape(ir: IRGraph, shape: Sequence[int]) -> list[int]:
    """The (N, C, *spatial) the network's layers run on for an input ``shape``: spatial sizes
    rounded up to multiples of the total stride under ``input: {pad: true}``, else as given."""
    if not ir.pad_input:
        return list(shape)
    stride = total_stride(ir)
    return list(shape[:2]) + [(s + stride - 1) // stride * stride for s in shape[2:]]


def check_input_shape(ir: IRGraph, shape: Sequence[int]) -> None:
    """Raise SpecError unless ``shape`` (N, C, *spatial) fits the network: its rank, its
    channels, and (unless the spec pads) spatial sizes that are multiples of the total stride."""
    problems = []
    stride = total_stride(ir)
    if len(shape) != ir.dims + 2:
        problems.append(Diagnostic("bad-input-size", f"expected {ir.dims + 2} dimensions (N, C, "
                                   f"{ir.dims} spatial), got {len(shape)}: {tuple(shape)}"))
    elif shape[1] != ir.in_channels:
        problems.append(Diagnostic("bad-input-size", f"expected {ir.in_channels} input "
                                   f"channels, got {shape[1]}"))
    elif not ir.pad_input and any(s % stride for s in shape[2:]):
        problems.append(Diagnostic(
            "bad-input-size", f"spatial size {tuple(shape[2:])} is not divisible by the total "
            f"stride {stride} (2**{ir.max_level} levels)",
            hint=f"use sizes that are multiples of {stride}, or set `input: {{pad: true}}`"))
    if problems:
        raise SpecError(problems)
