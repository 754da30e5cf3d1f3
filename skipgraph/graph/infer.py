"""Channel inference: the one place where in/out channels of nodes, edges and heads are decided.

Edges: the resampling op's own rule gives its output channels (a parametric op: the width its
``out`` names, ``target``: the destination node's width, ``source``, ``half`` of the source, or
a number; a param-free one keeps the source's channels); an edge conv outputs its ``width``. Nodes: concat adds the inputs, sum requires them to
agree; the block's own ``out_channels`` rule gives the output.
"""
from __future__ import annotations

import dataclasses

from ..blocks.options import channel_problem
from ..errors import DiagnosticSink
from .ir import IREdge, IRGraph

__all__ = ["infer"]


def infer(ir: IRGraph) -> IRGraph:
    """Fill channels in place (payloads are replaced, not mutated); raises SpecError on mismatch."""
    sink = DiagnosticSink()
    for node in list(ir.nodes()):
        if node.is_input:
            ir.add_node(dataclasses.replace(node, in_channels=node.width, out_channels=node.width))
            continue
        edges = [_infer_edge(ir, e) for e in ir.in_edges(node.id)]
        for e in edges:
            ir.add_edge(e)
        widths = [e.out_channels for e in edges] + [c.channels for c in node.carry_inits]
        _check_carry_inits(node, edges, sink)
        if _elementwise_mismatch(node.merge, widths):
            detail = ", ".join(f"{e.src} ({e.family}): {e.out_channels}" for e in edges)
            sink.error("channel-mismatch", f"{node.merge} merge at {node.id} gets different "
                       f"channel counts: {detail}", edges[0].origin.span if edges[0].origin
                       else None, key=f"edges.{edges[0].family}",
                       hint="give the edges a conv (`conv: {width: ...}`) or use merge: concat"
                       + (" (a product also broadcasts 1-channel inputs)"
                          if node.merge == "product" else ""))
            continue
        in_ch = (sum(widths) if node.merge == "concat" else max(widths)) if widths else 0
        try:
            out_ch = node.block.out_channels(in_ch, node.width)
        except ValueError as exc:  # the block's channel rule refuses (identity: width != input)
            sink.error("channel-mismatch", f"{node.id}: {exc}",
                       node.origin.span if node.origin else None, key=f"nodes.{node.family}")
            continue
        for problem in node.block.problems(ir.dims, in_ch, out_ch):
            sink.error("bad-value", f"node {node.id} ({in_ch} -> {out_ch} channels): block "
                       f"`{node.block.type}`: {problem}", node.origin.span if node.origin
                       else None, key=f"nodes.{node.family}.block")
        for e in edges:
            _check_edge_layers(ir.dims, e, sink)
        ir.add_node(dataclasses.replace(node, in_channels=in_ch, out_channels=out_ch))
    for head in list(ir.heads.values()):
        ir.add_head(dataclasses.replace(head, in_channels=ir.node(head.node).out_channels))
        for problem in head.settings.problems(ir.node(head.node).out_channels):
            sink.error("channel-mismatch", f"head {head.id}: {problem}",
                       head.origin.span if head.origin else None, key=f"heads.{head.family}")
    sink.raise_if_any()
    return ir


def _check_carry_inits(node, edges: list[IREdge], sink: DiagnosticSink) -> None:
    """``duplicate`` copies the node's first other input: it must have the carried width."""
    for c in node.carry_inits:
        if c.mode == "duplicate" and edges and edges[0].out_channels != c.channels:
            sink.error("channel-mismatch", f"{node.id}: the first-iteration `duplicate` of "
                       f"`{c.family}` copies {edges[0].src} ({edges[0].out_channels} channels) "
                       f"but the carried input has {c.channels}", None,
                       hint="use init: zeros", key=f"loops.*.carry.{c.family}")


def _check_edge_layers(dims: int, e: IREdge, sink: DiagnosticSink) -> None:
    """The edge's norm/act after resampling and its conv block, on their channels."""
    found = []
    if e.resample is not None:
        problem = channel_problem(e.resample.norm, e.resample.act, e.resampled_channels)
        found += [f"`{e.resample.op}`'s norm/act on {e.resampled_channels} channels: {problem}"] \
            if problem else []
    if e.conv_block is not None:
        before = e.in_channels if e.conv_at == "source" else e.resampled_channels
        found += [f"conv block `{e.conv_block.type}` ({before} -> {e.conv_width} channels): {p}"
                  for p in e.conv_block.problems(dims, before, e.conv_width)]
    for problem in found:
        sink.error("bad-value", f"edge {e.src} -> {e.dst} ({e.family}): {problem}",
                   e.origin.span if e.origin else None, key=f"edges.{e.family}")


def _infer_edge(ir: IRGraph, e: IREdge) -> IREdge:
    """Channels through an edge: [conv at source] -> resample -> [conv at target]."""
    src = ir.node(e.src).out_channels
    before = e.conv_width if (e.conv_width is not None and e.conv_at == "source") else src
    mid = before
    r = e.resample
    if r is not None:
        mid = r.settings.out_channels(before, ir.node(e.dst).width)
    out = e.conv_width if (e.conv_width is not None and e.conv_at == "target") else mid
    return dataclasses.replace(e, in_channels=src, resampled_channels=mid, out_channels=out)


def _elementwise_mismatch(merge: str, widths: list[int]) -> bool:
    """A sum needs equal widths; a product also broadcasts 1-channel inputs (a spatial gate)."""
    if merge == "sum":
        return len(set(widths)) > 1
    if merge == "product":
        return len(set(widths) - {1}) > 1
    return False
